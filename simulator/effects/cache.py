"""The ``cache`` override: an exact-match response cache, and answers that go out of date.

Each (app, task, side) has its own :class:`~llmopt_client.cache.LruCache` on the simulated clock,
keyed by the SDK's :func:`~llmopt_client.cache.cache_key` over the config's ``key_fields``
(model, params, system prompt, prompt, tenant): a repeated prompt within the TTL is a hit. The
cache stores the *answer version*: when a task's correct answers change over time
(``TaskProfile.answer_lifetime_s``), prompt ``k``'s answer changes every ``L`` seconds, at its
own phase, and a hit whose stored version is older than the current one is *stale* (it costs
quality; :meth:`simulator.fleet.Fleet` applies the loss).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from llmopt_client.cache import LruCache, cache_key

__all__ = ["AnswerCache", "CacheOutcome", "answer_version"]

_Arr = np.ndarray[Any, Any]
_GOLDEN = 0.6180339887498949  # spreads the prompts' phases evenly over the lifetime


def answer_version(prompt: int, at_s: float, lifetime_s: float | None) -> int:
    """The version of prompt ``prompt``'s correct answer at ``at_s`` (epoch seconds).

    ``None`` lifetime: answers never change (always version 0).
    """
    if lifetime_s is None:
        return 0
    phase = (prompt * _GOLDEN) % 1.0 * lifetime_s
    return math.floor((at_s + phase) / lifetime_s)


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    """Which calls of a batch the cache answered, and which of those answers were stale."""

    hit: _Arr
    stale: _Arr


class _Clock:
    """The simulated clock the SDK's cache reads (seconds)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AnswerCache:
    """Per-side response caches of the fleet's apps (see the module docstring)."""

    def __init__(self) -> None:
        self._clock = _Clock()
        self._caches: dict[tuple[str, str, str], LruCache] = {}

    def serve(
        self,
        side: tuple[str, str, str],
        request: Mapping[str, Any],
        cache: tuple[float, tuple[str, ...]],
        times: _Arr,
        repeat: _Arr,
        pool: _Arr,
        failed: _Arr,
        lifetime_s: float | None,
    ) -> CacheOutcome:
        """Look up (and on a successful miss, store) each repeated prompt of one side's batch.

        Args:
            side: (app, task, variant): each side keeps its own cache.
            request: The request fields common to the batch (model, params, system prompt).
            cache: The override's TTL (seconds) and key fields.
            times: Each call's time, epoch seconds, ascending.
            repeat: Whether the call repeats one of the task's known prompts ...
            pool: ... and which one (unique prompts never hit).
            failed: Calls that fail when served (a failed answer is not stored).
            lifetime_s: How long a correct answer stays correct (``None``: forever).
        """
        n = len(times)
        hit, stale = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        found = self._caches.get(side)
        if found is None:
            found = self._caches[side] = LruCache(clock=self._clock)
        ttl_s, key_fields = cache
        task = side[1]
        for i in np.flatnonzero(repeat).tolist():
            at = float(times[i])
            self._clock.now = at
            prompt = int(pool[i])
            key = cache_key(task, {**request, "prompt": f"prompt-{prompt}"}, key_fields)
            version = answer_version(prompt, at, lifetime_s)
            stored = found.get(key)
            if stored is not None:
                hit[i] = True
                stale[i] = int(stored) != version
            elif not failed[i]:
                found.set(key, str(version).encode(), ttl_s)
        return CacheOutcome(hit, stale)
