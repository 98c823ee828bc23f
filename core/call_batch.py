"""Columnar batches of LLM calls: how the processor moves calls between its steps.

One :class:`CallBatch` holds the valid calls of one app from one Kafka poll, in arrival order,
as numpy arrays and lists, so the per-app state works on whole columns instead of one event
object at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["F64", "I64", "CallBatch", "CallFields"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_NAN = math.nan


class CallFields(Protocol):
    """What a call-shaped object (a validated ``LlmCall`` or a decoded wire record) offers."""

    event_id: str
    task: str | None
    model: str | None
    provider: str | None
    latency_ms: float | None
    ttft_ms: float | None
    quality: float | None
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    status: str
    error_type: str | None
    prompt_hash: str | None
    request_id: str | None
    variant: str


@dataclass(frozen=True, slots=True)
class CallBatch:
    """Calls of one app in arrival order; NaN marks an absent ttft, quality or cost."""

    app: str
    event_id: list[str]
    ts: I64  # epoch milliseconds
    task: list[str]
    model: list[str]
    variant: list[str]
    provider: list[str | None]
    latency: F64
    ttft: F64
    quality: F64
    cost: F64
    tokens: I64  # shape (n, 3): input, output, cache read
    ok: npt.NDArray[np.bool_]
    error_type: list[str | None]
    prompt_hash: list[str | None]
    request_id: list[str | None]

    def __len__(self) -> int:
        return len(self.event_id)

    @staticmethod
    def build(app: str, calls: Sequence[Any], ts_ms: Sequence[int] | I64) -> CallBatch:
        """Columns of ``calls``, objects with the :class:`CallFields` attributes.

        Args:
            app: The app all calls belong to.
            calls: Validated calls (every required field present).
            ts_ms: Their event times in epoch milliseconds.
        """
        n = len(calls)
        nan = _NAN
        c: Sequence[CallFields] = calls
        return CallBatch(
            app=app,
            event_id=[x.event_id for x in c],
            ts=np.asarray(ts_ms, dtype=np.int64),
            task=[x.task or "default" for x in c],
            model=[x.model or "" for x in c],
            variant=[x.variant for x in c],
            provider=[x.provider for x in c],
            latency=np.fromiter((x.latency_ms for x in c), np.float64, n),
            ttft=np.fromiter((nan if x.ttft_ms is None else x.ttft_ms for x in c), np.float64, n),
            quality=np.clip(
                np.fromiter((nan if x.quality is None else x.quality for x in c), np.float64, n),
                0.0,
                1.0,
            ),
            cost=np.fromiter((nan if x.cost_usd is None else x.cost_usd for x in c), np.float64, n),
            tokens=np.array(
                [(x.input_tokens, x.output_tokens, x.cache_read_tokens or 0) for x in c],
                dtype=np.int64,
            ).reshape(n, 3),
            ok=np.fromiter((x.status == "ok" for x in c), np.bool_, n),
            error_type=[x.error_type for x in c],
            prompt_hash=[x.prompt_hash for x in c],
            request_id=[x.request_id for x in c],
        )
