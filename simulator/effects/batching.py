"""The ``batching`` override: calls grouped into micro-batches, as the SDK's ``Batcher`` does.

A batch opens with the first call that finds none open and is sent when it holds
``max_batch_size`` calls or its first call has waited ``max_wait_ms``, whichever comes first
(:class:`llmopt_client.batching.Batcher`'s rule, computed over the arrival times instead of run
on a thread). Each call waits from its arrival to its batch's send; the batched request then
takes ``1 + item_latency · (size - 1)`` times a single call's latency, and the provider bills a
batched call ``1 - discount`` of its price. Batches do not span the fleet's ticks (ticks are
seconds long, waits milliseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Batches", "form_batches"]

_Arr = np.ndarray[Any, Any]


@dataclass(frozen=True, slots=True)
class Batches:
    """Each call's wait for its batch (seconds) and its batch's size."""

    wait_s: _Arr
    size: _Arr

    def latency_factor(self, item_latency: float) -> _Arr:
        """How much longer each call's batched request takes than a single call."""
        factor: _Arr = 1.0 + item_latency * (self.size - 1)
        return factor


def form_batches(times: _Arr, max_batch_size: int, max_wait_ms: float) -> Batches:
    """Group calls arriving at ``times`` (seconds, ascending) into batches.

    Raises:
        ValueError: When ``max_batch_size < 1`` or ``max_wait_ms <= 0``.
    """
    if max_batch_size < 1 or max_wait_ms <= 0:
        raise ValueError("batches need max_batch_size >= 1 and max_wait_ms > 0")
    n = len(times)
    wait, size = np.zeros(n), np.ones(n, dtype=np.int64)
    max_wait = max_wait_ms / 1000.0
    i = 0
    while i < n:
        first = float(times[i])
        j = i + 1
        while j < n and j - i < max_batch_size and float(times[j]) - first <= max_wait:
            j += 1
        sent = float(times[j - 1]) if j - i == max_batch_size else first + max_wait
        wait[i:j] = sent - times[i:j]
        size[i:j] = j - i
        i = j
    return Batches(wait, size)
