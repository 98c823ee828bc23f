"""The response cache a task's ``cache`` override turns on: exact match, with a TTL.

:func:`cache_key` hashes the request fields the config's ``key_fields`` name (model, params,
system prompt, prompt, tenant by default), so two requests share an answer only when all of
those are equal. :class:`LruCache` keeps answers in process (bounded, least recently used out);
:class:`RedisCache` shares them between replicas (``pip install llmopt-client[redis]``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from hashlib import blake2b
from typing import Any, Protocol

import msgspec

__all__ = ["LruCache", "RedisCache", "ResponseCache", "cache_key"]

_ENCODER = msgspec.json.Encoder(order="sorted")


def cache_key(task: str, request: Mapping[str, Any], key_fields: tuple[str, ...]) -> str:
    """The cache key of ``request`` for ``task``: a hash of the ``key_fields`` it has.

    Args:
        task: The task (answers are never shared across tasks).
        request: The request's fields (``model``, ``params``, ``system_prompt``, ``prompt``,
            ``tenant``, or any other the config names).
        key_fields: The fields that make two requests the same.
    """
    picked = {name: request.get(name) for name in key_fields}
    digest = blake2b(_ENCODER.encode([task, picked]), digest_size=16).hexdigest()
    return f"llmopt:cache:{task}:{digest}"


class ResponseCache(Protocol):
    """Where cached answers live (bytes: encode the answer as the app likes)."""

    def get(self, key: str) -> bytes | None:
        """The answer under ``key``, or ``None`` (absent or expired)."""
        ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep ``value`` under ``key`` for ``ttl_s`` seconds."""
        ...


class LruCache:
    """An in-process cache: at most ``max_entries`` answers, each until its TTL.

    Args:
        max_entries: Least recently used answers are evicted beyond this.
        clock: Monotonic seconds (injected in tests).
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic):
        self._max = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        """The answer under ``key`` unless absent or expired."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] <= self._clock():
                if found is not None:
                    del self._items[key]
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[1]

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep ``value`` for ``ttl_s`` seconds (evicting the least recently used)."""
        with self._lock:
            self._items[key] = (self._clock() + ttl_s, value)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class RedisCache:
    """Answers shared between replicas in Redis (``SET key value PX ttl``).

    Args:
        client: A synchronous ``redis.Redis`` (any object with ``get`` and ``set(px=)``).
    """

    def __init__(self, client: Any) -> None:
        self._redis = client

    def get(self, key: str) -> bytes | None:
        """The answer under ``key`` (Redis expires it after its TTL)."""
        value = self._redis.get(key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Keep ``value`` for ``ttl_s`` seconds (at least 1 ms)."""
        self._redis.set(key, value, px=max(1, int(ttl_s * 1000)))
