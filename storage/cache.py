"""Key-value cache and pub/sub: Redis when ``storage.redis_url`` is set, in-process otherwise.

The in-process variant serves ``make run`` (one process, nothing outside); Redis is what several
replicas share (active configs, notifications, rate-limit state in later issues).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Protocol

from redis import asyncio as aioredis
from redis.exceptions import RedisError

from core.errors import StorageUnavailableError

__all__ = ["Cache", "MemoryCache", "RedisCache", "open_cache"]


class Cache(Protocol):
    """What services need from a cache."""

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` when absent or expired."""
        ...

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value``, optionally expiring after ``ttl_s`` seconds."""
        ...

    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every current subscriber of ``channel``."""
        ...

    def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """Messages published to ``channel`` from now on."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StorageUnavailableError` when the cache cannot be reached."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class MemoryCache:
    """In-process cache and pub/sub for a single process."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[bytes]]] = {}

    async def get(self, key: str) -> bytes | None:
        """See :class:`Cache`."""
        found = self._data.get(key)
        if found is None:
            return None
        value, expires = found
        if expires is not None and expires <= time.monotonic():
            del self._data[key]
            return None
        return value

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """See :class:`Cache`."""
        self._data[key] = (value, time.monotonic() + ttl_s if ttl_s else None)

    async def publish(self, channel: str, message: bytes) -> None:
        """See :class:`Cache`."""
        for queue in self._subscribers.get(channel, set()):
            queue.put_nowait(message)

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """See :class:`Cache`."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._subscribers.setdefault(channel, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[channel].discard(queue)

    async def ping(self) -> None:
        """See :class:`Cache`."""

    async def close(self) -> None:
        """See :class:`Cache`."""
        self._data.clear()


class RedisCache:
    """Redis-backed cache and pub/sub (redis-py asyncio)."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    async def get(self, key: str) -> bytes | None:
        """See :class:`Cache`."""
        try:
            value = await self._redis.get(key)
        except RedisError as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """See :class:`Cache`."""
        try:
            await self._redis.set(key, value, px=int(ttl_s * 1000) if ttl_s else None)
        except RedisError as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def publish(self, channel: str, message: bytes) -> None:
        """See :class:`Cache`."""
        try:
            await self._redis.publish(channel, message)
        except RedisError as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def subscribe(self, channel: str) -> AsyncIterator[bytes]:
        """See :class:`Cache`."""
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(channel)
        try:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    data = message["data"]
                    yield data.encode() if isinstance(data, str) else bytes(data)
        finally:
            await pubsub.unsubscribe(channel)
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def ping(self) -> None:
        """See :class:`Cache`."""
        try:
            await self._redis.ping()
        except RedisError as exc:
            raise StorageUnavailableError(f"redis unreachable: {exc}") from exc

    async def close(self) -> None:
        """See :class:`Cache`."""
        await self._redis.aclose()


def open_cache(redis_url: str) -> Cache:
    """Redis when a URL is given, else the in-process cache."""
    return RedisCache(redis_url) if redis_url else MemoryCache()
