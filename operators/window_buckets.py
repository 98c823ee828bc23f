"""The calls of one time bucket of one segment (pure logic used by ``window_store``).

A bucket is the gcd of the tumbling length and the sliding step (``windower.WindowSpec``):
every window is a run of whole buckets, so a call is stored once however many windows hold it.
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from core.call_batch import I64, CallBatch
from core.stats import PairedQuality
from operators.pricing import PriceTable
from operators.window_digest import Digest
from operators.window_stats import Columns, merge_shadow, paired_quality
from operators.windower import WindowSpec  # where snapshots of earlier releases find it

__all__ = ["EXACT_CALLS", "Bucket", "WindowSpec"]

_NAN = math.nan
EXACT_CALLS = 1024
"""Calls a bucket keeps one by one; past this it folds them into a :class:`Digest` (sketches)."""


class Bucket:
    """The calls of one time bucket of one segment, as compact columns (cheap to snapshot).

    Calls without ``cost_usd`` of the bucket's model and provider are priced per bucket,
    vectorised, when the columns are built. Up to ``limit`` calls are kept one by one (their
    windows' statistics are exact); past it the bucket folds them into a :class:`Digest`, and
    from then on folds each further ``limit`` calls at once (calls since the last fold stay one
    by one: folding in chunks costs a sketch update per chunk, not per batch). Per folded call
    it keeps only the served score of the calls a feedback can still reach (those with a
    ``request_id``) or that carry a shadow score, so its memory stops growing with its calls.
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
        "joinable",
        "digest",
        "served",
        "size",
        "limit",
        "folded",
    )
    __slots__ = (*_FIELDS, "_cols")

    def __init__(self, model: str, provider: str | None, limit: int = EXACT_CALLS) -> None:
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
        self.joinable = array("q")  # positions of unfolded calls with a request_id
        self.digest: Digest | None = None  # past the limit: the summary of the folded calls
        self.served: dict[int, float] = {}  # folded position → served score (joinable, shadow)
        self.size = 0
        self.limit = limit
        self.folded = 0  # calls folded into the digest: the columns hold positions from here
        self._cols: Columns | None = None

    def __len__(self) -> int:
        return self.size

    @property
    def exact(self) -> bool:
        """Whether the bucket still holds its calls one by one."""
        return self.digest is None

    def __getstate__(self) -> tuple[object, ...]:
        # The fields of the releases before digests, then the digest's own fields in one tuple.
        names = self._FIELDS
        return (
            *(getattr(self, n) for n in names[:13]),
            tuple(getattr(self, n) for n in names[13:]),
        )

    def __setstate__(self, state: tuple[object, ...]) -> None:
        if len(state) == 12:  # a snapshot from before shadow scores
            state = (*state, {})
        if len(state) == 13:  # a snapshot from before digests: every call held one by one
            ts = state[2]
            assert isinstance(ts, array)
            state = (*state, (array("q"), None, {}, len(ts), EXACT_CALLS, 0))
        *fields, extra = state
        assert isinstance(extra, tuple)
        for name, value in zip(self._FIELDS, (*fields, *extra), strict=True):
            setattr(self, name, value)
        self._cols = None

    def extend(self, calls: CallBatch, rows: I64, prices: PriceTable) -> int:
        """Append the calls at ``rows`` of ``calls``; returns the position of the first."""
        start = self.size
        self.size += len(rows)
        listed = rows.tolist()
        cost = calls.cost[rows]
        tokens = calls.tokens[rows]
        if calls.providers != {self.provider}:  # rare: a provider other than the bucket's
            for j, r in enumerate(listed):
                if calls.provider[r] != self.provider and np.isnan(cost[j]):
                    priced = prices.tokens_cost(self.model, calls.provider[r], tokens[j : j + 1])
                    cost[j] = 0.0 if priced is None else priced[0]
        self.ts.frombytes((calls.ts[rows] / 1000.0).tobytes())
        self.latency.frombytes(calls.latency[rows].tobytes())
        self.ttft.frombytes(calls.ttft[rows].tobytes())
        self.quality.frombytes(calls.quality[rows].tobytes())
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
            self._take_shadow(calls, listed, start)
        requests = calls.request_id
        if any(requests):  # most batches carry none: skip the per-call test
            self.joinable.extend(pos for pos, r in enumerate(listed, start) if requests[r])
        self._cols = None
        if self.size - self.folded > self.limit:
            self._fold(prices)
        return start

    def _take_shadow(self, calls: CallBatch, listed: list[int], start: int) -> None:
        models, scores = calls.shadow_model, calls.shadow_quality
        for pos, r in enumerate(listed, start):
            score = float(scores[r])
            if (model := models[r]) is not None and not math.isnan(score):
                self.shadow[pos] = (model, score)

    def _fold(self, prices: PriceTable) -> None:
        """Fold the calls held one by one into the digest; keep only joinable served scores."""
        cols = self.columns(prices)
        quality, folded = self.quality, self.folded
        reachable = (*self.joinable, *(pos for pos in self.shadow if pos >= folded))
        self.served.update({pos: quality[pos - folded] for pos in reachable})
        digest = Digest.of_columns(cols)
        digest.shadow = {}  # paired from ``served`` and ``shadow`` when summarised
        self.digest = digest if self.digest is None else self.digest.merge(digest)
        self.folded = self.size
        self.ts, self.latency, self.ttft = array("d"), array("d"), array("d")
        self.quality, self.cost = array("d"), array("d")
        self.tokens, self.ok, self.fixed = array("q"), array("b"), array("q")
        self.errors, self.prompts, self.joinable = [], [], array("q")
        self._cols = None

    def set_quality(self, position: int, quality: float) -> None:
        """Apply a joined feedback score."""
        if position >= self.folded:
            self.quality[position - self.folded] = quality
            self._cols = None
            return
        assert self.digest is not None
        old = self.served.get(position, _NAN)
        if not math.isnan(old):
            self.digest.remove_quality(old)
        if not math.isnan(quality):
            self.digest.add_quality(np.array([quality]))
        self.served[position] = quality

    def set_shadow(self, position: int, model: str, quality: float) -> None:
        """Apply a joined feedback score of the call's shadow answer."""
        self.shadow[position] = (model, quality)
        self._cols = None

    def summary(self, prices: PriceTable) -> Digest:
        """The bucket as a :class:`Digest` (built from its columns while it is exact)."""
        if self.digest is None:
            return Digest.of_columns(self.columns(prices))
        unfolded = Digest.of_columns(self.columns(prices)) if len(self.ts) else Digest()
        served, folded = self.served, self.folded
        paired = paired_quality(
            (model, served[pos], score)
            for pos, (model, score) in self.shadow.items()
            if pos < folded and not math.isnan(served.get(pos, _NAN))
        )
        unfolded.shadow = merge_shadow((unfolded.shadow, paired))
        return self.digest.merge(unfolded)

    def columns(self, prices: PriceTable) -> Columns:
        """The calls held one by one as numpy columns (cached until the bucket changes)."""
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
        served, folded = self.quality, self.folded
        return paired_quality(
            (model, served[pos - folded], score)
            for pos, (model, score) in self.shadow.items()
            if pos >= folded and not math.isnan(served[pos - folded])
        )
