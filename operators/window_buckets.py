"""Window geometry and the per-bucket store of calls (pure logic used by ``app_windows``).

A bucket is the gcd of the tumbling length and the sliding step: every window is a run of
whole buckets, so a call is stored once however many windows hold it.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from core.call_batch import I64, CallBatch
from core.settings import ProcessorSettings
from core.stats import PairedQuality
from operators.pricing import PriceTable
from operators.window_stats import Columns, paired_quality

__all__ = ["SLIDING", "TUMBLING", "Bucket", "WindowSpec"]

TUMBLING, SLIDING = 0, 1
_NAN = math.nan


def _ms(value: timedelta) -> int:
    return round(value.total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry and time limits, in milliseconds."""

    tumbling: int
    sliding: int
    step: int
    lateness: int
    feedback_join: int
    dedup_ttl: timedelta

    @property
    def bucket(self) -> int:
        """Bucket width: every window start and end is a multiple of it."""
        return math.gcd(self.tumbling, self.step)

    @property
    def retention(self) -> int:
        """How long behind the watermark buckets stay, for corrections and feedback."""
        return max(self.tumbling, self.sliding) + max(self.feedback_join, self.lateness)

    @staticmethod
    def from_settings(p: ProcessorSettings) -> WindowSpec:
        """The spec of the processor settings."""
        return WindowSpec(
            tumbling=_ms(p.tumbling_window),
            sliding=_ms(p.sliding_window),
            step=_ms(p.sliding_step),
            lateness=_ms(p.allowed_lateness),
            feedback_join=_ms(p.feedback_join_window),
            dedup_ttl=p.dedup_ttl,
        )

    def windows_of_bucket(self, index: int) -> list[tuple[int, int, int]]:
        """(kind, start, end) of every window that holds bucket ``index``."""
        start = index * self.bucket
        t_start = start - start % self.tumbling
        out = [(TUMBLING, t_start, t_start + self.tumbling)]
        end = start - start % self.step + self.step
        while end - self.sliding <= start:
            out.append((SLIDING, end - self.sliding, end))
            end += self.step
        return out


class Bucket:
    """The calls of one time bucket of one segment, as compact columns (cheap to snapshot).

    Calls without ``cost_usd`` of the bucket's model and provider are priced per bucket,
    vectorised, when the columns are built.
    """

    _FIELDS = (
        "model",
        "provider",
        "ts",
        "latency",
        "ttft",
        "quality",
        "cost",
        "tokens",
        "ok",
        "errors",
        "prompts",
        "fixed",
        "shadow",
    )
    __slots__ = (*_FIELDS, "_cols")

    def __init__(self, model: str, provider: str | None) -> None:
        self.model, self.provider = model, provider
        self.ts, self.latency, self.ttft = array("d"), array("d"), array("d")
        self.quality, self.cost = array("d"), array("d")
        self.tokens = array("q")  # input, output, cache read per call
        self.ok = array("b")
        self.errors: list[str] = []
        self.prompts: list[str] = []
        self.fixed = array("q")  # prompt_tokens_fixed per call, -1 where not reported
        # Sparse: position → (shadow model, its score), only for calls that carried one.
        self.shadow: dict[int, tuple[str, float]] = {}
        self._cols: Columns | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        if len(state) == len(self._FIELDS) - 1:  # a snapshot from before shadow scores
            state = (*state, {})
        for name, value in zip(self._FIELDS, state, strict=True):
            setattr(self, name, value)
        self._cols = None

    def extend(self, calls: CallBatch, rows: I64, prices: PriceTable) -> int:
        """Append the calls at ``rows`` of ``calls``; returns the position of the first."""
        start = len(self.ts)
        self.ts.frombytes((calls.ts[rows] / 1000.0).tobytes())
        self.latency.frombytes(calls.latency[rows].tobytes())
        self.ttft.frombytes(calls.ttft[rows].tobytes())
        self.quality.frombytes(calls.quality[rows].tobytes())
        cost = calls.cost[rows]
        tokens = calls.tokens[rows]
        listed = rows.tolist()
        if calls.providers != {self.provider}:  # rare: a provider other than the bucket's
            for j, r in enumerate(listed):
                if calls.provider[r] != self.provider and np.isnan(cost[j]):
                    priced = prices.tokens_cost(self.model, calls.provider[r], tokens[j : j + 1])
                    cost[j] = 0.0 if priced is None else priced[0]
        self.cost.frombytes(cost.tobytes())
        self.tokens.frombytes(tokens.tobytes())
        ok = calls.ok[rows]
        self.ok.frombytes(ok.astype(np.int8).tobytes())
        if not ok.all():
            self.errors.extend(calls.error_type[r] or "unknown" for r in listed if not calls.ok[r])
        if calls.has_prompt_hashes:
            self.prompts.extend(h for r in listed if (h := calls.prompt_hash[r]))
        self.fixed.frombytes(calls.fixed_tokens[rows].tobytes())
        if calls.has_shadow:
            models, scores = calls.shadow_model, calls.shadow_quality
            for pos, r in enumerate(listed, start):
                score = float(scores[r])
                if (model := models[r]) is not None and not math.isnan(score):
                    self.shadow[pos] = (model, score)
        self._cols = None
        return start

    def set_quality(self, position: int, quality: float) -> None:
        """Apply a joined feedback score."""
        self.quality[position] = quality
        self._cols = None

    def set_shadow(self, position: int, model: str, quality: float) -> None:
        """Apply a joined feedback score of the call's shadow answer."""
        self.shadow[position] = (model, quality)
        self._cols = None

    def columns(self, prices: PriceTable) -> Columns:
        """The bucket as numpy columns (cached until the bucket changes)."""
        if self._cols is None:
            tokens = np.array(self.tokens, dtype=np.int64).reshape(-1, 3)
            cost = np.array(self.cost, dtype=np.float64)
            unpriced = np.isnan(cost)
            if unpriced.any():
                priced = prices.tokens_cost(self.model, self.provider, tokens[unpriced])
                cost[unpriced] = 0.0 if priced is None else priced
            self._cols = Columns(
                ts=np.array(self.ts, dtype=np.float64),
                latency=np.sort(np.array(self.latency, dtype=np.float64)),
                ttft=np.sort(np.array(self.ttft, dtype=np.float64)),
                quality=np.array(self.quality, dtype=np.float64),
                cost=cost,
                tokens=tokens,
                ok=np.array(self.ok, dtype=np.bool_),
                error_types=tuple(self.errors),
                prompt_hashes=tuple(self.prompts),
                fixed=np.array(self.fixed, dtype=np.int64),
                shadow=self._paired() if self.shadow else {},
            )
        return self._cols

    def _paired(self) -> dict[str, PairedQuality]:
        """Paired sums of the calls holding both a served and a shadow score."""
        served = self.quality
        return paired_quality(
            (model, served[pos], score)
            for pos, (model, score) in self.shadow.items()
            if not math.isnan(served[pos])
        )
