"""Columnar batches of LLM calls: how the processor moves calls between its steps.

One :class:`CallBatch` holds the valid calls of one app from one Kafka poll, in arrival order,
as numpy arrays and lists, so the per-app state works on whole columns instead of one event
object at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["F64", "I64", "CallBatch", "CallFields"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


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
    prompt_tokens_fixed: int | None
    request_id: str | None
    variant: str
    config_version: int | None
    shadow_model: str | None
    shadow_quality: float | None


@dataclass(frozen=True, slots=True)
class CallBatch:
    """Calls of one app in arrival order; NaN marks an absent ttft, quality, shadow or cost.

    ``shadow_model`` / ``shadow_quality`` are the model the app also ran on the request without
    serving it and that model's score; ``has_shadow`` says whether any call carries one (most
    batches carry none, and the window state then skips them at no cost).
    """

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
    fixed_tokens: I64  # prompt_tokens_fixed; -1 where the call did not report it
    request_id: list[str | None]
    providers: frozenset[str | None]  # every provider in the batch (usually one)
    has_prompt_hashes: bool
    config_version: list[int | None]
    shadow_model: list[str | None]
    shadow_quality: F64
    has_shadow: bool

    def __len__(self) -> int:
        return len(self.event_id)

    @staticmethod
    def from_events(app: str, calls: Sequence[Any]) -> CallBatch:
        """Columns of validated call events (``timestamp`` an aware datetime)."""
        ms = timedelta(milliseconds=1)
        return CallBatch.build(app, calls, [(x.timestamp - _EPOCH) // ms for x in calls])

    @staticmethod
    def build(app: str, calls: Sequence[Any], ts_ms: Sequence[int] | I64) -> CallBatch:
        """Columns of ``calls``, objects with the :class:`CallFields` attributes.

        Args:
            app: The app all calls belong to.
            calls: Validated calls (every required field present).
            ts_ms: Their event times in epoch milliseconds.
        """
        c: Sequence[CallFields] = calls
        i64 = np.int64
        provider = [x.provider for x in c]
        prompt_hash = [x.prompt_hash for x in c]
        shadow_model = [x.shadow_model for x in c]
        # Shadow fields come both or neither (the decoder rejects one without the other).
        has_shadow = shadow_model.count(None) != len(shadow_model)
        # List comprehensions into numpy: the fastest way from objects to columns here.
        return CallBatch(
            app=app,
            event_id=[x.event_id for x in c],
            ts=np.asarray(ts_ms, dtype=i64),
            task=[x.task or "default" for x in c],
            model=[x.model or "" for x in c],
            variant=[x.variant for x in c],
            provider=provider,
            latency=_floats([x.latency_ms for x in c]),
            ttft=_floats([x.ttft_ms for x in c]),
            quality=np.clip(_floats([x.quality for x in c]), 0.0, 1.0),
            cost=_floats([x.cost_usd for x in c]),
            tokens=np.column_stack(
                (
                    np.array([x.input_tokens for x in c], dtype=i64),
                    np.array([x.output_tokens for x in c], dtype=i64),
                    _ints([x.cache_read_tokens for x in c], 0),
                )
            ).reshape(len(c), 3),
            ok=np.array([x.status == "ok" for x in c], dtype=np.bool_),
            error_type=[x.error_type for x in c],
            prompt_hash=prompt_hash,
            fixed_tokens=_ints([x.prompt_tokens_fixed for x in c], -1),
            request_id=[x.request_id for x in c],
            providers=frozenset(provider),
            has_prompt_hashes=any(prompt_hash),
            config_version=[x.config_version for x in c],
            shadow_model=shadow_model,
            shadow_quality=(
                np.clip(_floats([x.shadow_quality for x in c]), 0.0, 1.0)
                if has_shadow
                else np.full(len(c), np.nan)
            ),
            has_shadow=has_shadow,
        )


def _floats(values: list[float | None]) -> F64:
    """A float64 column; None becomes NaN.

    A column nobody reported (ttft, quality, cost often are) is filled at once: numpy's
    conversion of None costs ~4x that of a float.
    """
    if values.count(None) == len(values):
        return np.full(len(values), np.nan)
    return np.array(values, dtype=np.float64)


def _ints(values: list[int | None], absent: int) -> I64:
    """An int64 column; None becomes ``absent``."""
    if values.count(None) == len(values):
        return np.full(len(values), absent, dtype=np.int64)
    return np.array([absent if v is None else v for v in values], dtype=np.int64)
