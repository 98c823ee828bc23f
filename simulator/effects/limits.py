"""Rate limits: the provider's (429 beyond its rate) and the ``rate_limit`` override's queue.

The provider accepts a task's calls at ``provider_rps`` (a token bucket holding one second of
that rate); a call sent when the bucket is empty is answered at once with 429
(``status=error``, ``error_type=rate_limited``; the app does not retry). A client-side
``rate_limit`` (requests/s, tokens/min, burst) holds each call in a FIFO queue until the SDK's
:class:`~llmopt_client.ratelimit.TokenBucket` has its tokens: the provider then sees a smoother
rate and answers fewer 429s, and the call's latency grows by its wait. A call that would wait
longer than the task's ``queue_timeout_s`` gives up (``error_type=timeout``) without being sent:
a limit below the task's sustained rate starves it.

**Sides.** ``share`` scales the rates for callers that give each side its share of the quota;
the fleet instead runs each side's limits over the task's whole stream (as if the side's config
served every call) and keeps the side's own calls, so a canary previews its full rollout
(:func:`simulator.fleet._whole_stream`). Bursts are never scaled: a fan-out's calls arrive
together whatever the share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from llmopt_client.ratelimit import TokenBucket

__all__ = ["Paced", "RateLimits"]

_Arr = np.ndarray[Any, Any]
_PROVIDER_BURST_S = 1.0  # the provider's bucket holds this much of its rate


@dataclass(frozen=True, slots=True)
class Paced:
    """One side's batch after the limits: queueing wait (s), 429s, calls given up in the queue."""

    wait_s: _Arr
    throttled: _Arr
    timed_out: _Arr


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class _Side:
    """One side's buckets (rebuilt when their rates change) and its queue's last send time."""

    clock: _Clock
    shape: tuple[float | None, float | None, float | None, float]
    requests: TokenBucket | None
    tokens: TokenBucket | None
    provider: TokenBucket | None
    last_send: float = float("-inf")


def _bucket(clock: _Clock, rate: float | None, burst: float) -> TokenBucket | None:
    return None if rate is None else TokenBucket(rate, max(1.0, burst), clock=clock)


def _take(side: _Side, tokens: float) -> None:
    """Take one request and ``tokens`` from the client's buckets, waiting out rounding."""
    for bucket, amount in ((side.requests, 1.0), (side.tokens, tokens)):
        while bucket is not None and not bucket.try_acquire(amount):
            side.clock.now = math.nextafter(side.clock.now + bucket.delay(amount), math.inf)


class RateLimits:
    """The provider's and the clients' limits of every side (see the module docstring)."""

    def __init__(self) -> None:
        self._sides: dict[tuple[str, str, str], _Side] = {}
        self._origin: float | None = None  # bucket clocks run from here (float precision)

    def _side(
        self,
        key: tuple[str, str, str],
        at: float,
        share: float,
        client: tuple[float | None, float | None, int] | None,
        provider_rps: float | None,
    ) -> _Side:
        rps, tpm, burst = client if client is not None else (None, None, 1)
        rps = None if rps is None else rps * share
        tps = None if tpm is None else tpm / 60 * share
        prov = None if provider_rps is None else provider_rps * share
        full_tps = None if tpm is None else tpm / 60
        shape = (rps, tps, prov, float(burst))
        found = self._sides.get(key)
        if found is not None and found.shape == shape:
            return found
        clock = found.clock if found is not None else _Clock()
        clock.now = max(clock.now, at)
        side = _Side(
            clock,
            shape,
            _bucket(clock, rps, burst),
            _bucket(clock, tps, full_tps or 0.0),
            _bucket(clock, prov, (provider_rps or 0.0) * _PROVIDER_BURST_S),
            found.last_send if found is not None else float("-inf"),
        )
        self._sides[key] = side
        return side

    def pace(
        self,
        key: tuple[str, str, str],
        times: _Arr,
        tokens: _Arr,
        share: float,
        client: tuple[float | None, float | None, int] | None,
        provider_rps: float | None,
        queue_timeout_s: float,
    ) -> Paced:
        """Queue one side's calls behind the client's limit and send them to the provider.

        Args:
            key: (app, task, variant).
            times: Arrival times, epoch seconds, ascending.
            tokens: Each call's tokens (input plus output), for a tokens/min limit.
            share: The side's share of the task's traffic (its routing weight), in (0, 1].
            client: The override's (requests/s, tokens/min, burst), ``None``: no limit.
            provider_rps: The provider's rate for the whole task, ``None``: unlimited.
            queue_timeout_s: Longest wait in the client's queue before a call gives up.
        """
        n = len(times)
        wait, throttled = np.zeros(n), np.zeros(n, dtype=bool)
        timed_out = np.zeros(n, dtype=bool)
        if (client is None and provider_rps is None) or n == 0 or share <= 0:
            return Paced(wait, throttled, timed_out)
        if self._origin is None:
            self._origin = float(times[0])
        times = times - self._origin
        side = self._side(key, float(times[0]), share, client, provider_rps)
        clock = side.clock
        for i in range(n):
            arrive = float(times[i])
            send = max(arrive, side.last_send)
            clock.now = max(clock.now, send)
            need = float(tokens[i])
            delay = 0.0
            if side.requests is not None:
                delay = side.requests.delay()
            if side.tokens is not None:
                delay = max(delay, side.tokens.delay(min(need, side.tokens.burst)))
            send += delay
            if send - arrive > queue_timeout_s:
                timed_out[i] = True
                wait[i] = queue_timeout_s
                continue
            clock.now = max(clock.now, send)
            _take(side, min(need, side.tokens.burst) if side.tokens is not None else 0.0)
            send = clock.now
            if side.requests is not None or side.tokens is not None:
                side.last_send = send
            wait[i] = send - arrive
            if side.provider is not None:
                throttled[i] = not side.provider.try_acquire()
        return Paced(wait, throttled, timed_out)
