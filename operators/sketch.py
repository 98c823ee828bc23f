"""A mergeable relative-error quantile sketch (DDSketch-style logarithmic buckets).

A value ``x > 0`` is counted in bucket ``i = ceil(log_gamma(x))``, ``gamma = (1 + a) / (1 - a)``;
the bucket's representative ``2 gamma^i / (gamma + 1)`` is within a relative error ``a`` of every
value the bucket holds. Zeros are counted apart (exactly) and so are negative values (mirrored
buckets). Sketches of disjoint sets merge by adding counts, so the sketch of a window is the sum
of its buckets' sketches, whatever their order.

:meth:`LogSketch.percentiles` follows ``np.percentile``'s default (linear) method: it estimates
the two order statistics numpy interpolates between and interpolates the same way. For
non-negative values each estimate is within a relative error ``a`` of its order statistic, so the
result is within ``a`` of numpy's exact percentile (both order statistics are, and the
interpolation weights are non-negative). The minimum and the maximum are kept exactly.
Memory is one int64 key and one int64 count per occupied bucket: values spanning 1 ms to 1 h at
``a = 0.01`` occupy at most ~760 buckets, however many values there are.
"""

from __future__ import annotations

import math

import numpy as np

from core.call_batch import F64, I64

__all__ = ["RELATIVE_ACCURACY", "LogSketch"]

RELATIVE_ACCURACY = 0.01
"""Relative error of every order statistic the sketch estimates (1 %)."""


def _collapse(keys: I64, counts: I64) -> tuple[I64, I64]:
    """Sorted distinct keys with their counts summed (drops keys whose count reached zero)."""
    if not len(keys):
        return keys, counts
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.zeros(len(unique), np.int64)
    np.add.at(summed, inverse.reshape(-1), counts)
    live = summed != 0
    return unique[live], summed[live]


class LogSketch:
    """Counts of values in logarithmic buckets; mergeable, picklable, bounded in size."""

    __slots__ = (
        "_alpha",
        "_counts",
        "_exact_bounds",
        "_keys",
        "_max",
        "_min",
        "_neg_counts",
        "_neg_keys",
        "_zeros",
    )

    def __init__(self, relative_accuracy: float = RELATIVE_ACCURACY) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError("relative_accuracy must be in (0, 1)")
        self._alpha = relative_accuracy
        self._keys: I64 = np.empty(0, np.int64)
        self._counts: I64 = np.empty(0, np.int64)
        self._neg_keys: I64 = np.empty(0, np.int64)
        self._neg_counts: I64 = np.empty(0, np.int64)
        self._zeros = 0
        self._min = math.inf
        self._max = -math.inf
        self._exact_bounds = True  # min and max are values held (no value removed since)

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)

    @property
    def relative_accuracy(self) -> float:
        """The relative error bound ``a`` of each estimated order statistic."""
        return self._alpha

    @property
    def _log_gamma(self) -> float:
        return math.log((1 + self._alpha) / (1 - self._alpha))

    def __len__(self) -> int:
        return int(self._counts.sum() + self._neg_counts.sum()) + self._zeros

    @property
    def min(self) -> float:
        """The smallest value added (``inf`` when empty; a bound after :meth:`remove`)."""
        return self._min

    @property
    def max(self) -> float:
        """The largest value added (``-inf`` when empty; a bound after :meth:`remove`)."""
        return self._max

    def _bucket_keys(self, values: F64) -> I64:
        keys: I64 = np.ceil(np.log(values) / self._log_gamma).astype(np.int64)
        return keys

    def add(self, values: F64, sign: int = 1) -> None:
        """Count ``values`` (finite floats, NaN skipped); ``sign`` -1 takes them out again."""
        values = values[~np.isnan(values)]
        if not len(values):
            return
        if sign > 0:
            self._min = min(self._min, float(values.min()))
            self._max = max(self._max, float(values.max()))
        positive, negative = values[values > 0], values[values < 0]
        self._zeros += sign * int(len(values) - len(positive) - len(negative))
        if len(positive):
            keys = self._bucket_keys(positive)
            self._keys, self._counts = _collapse(
                np.concatenate((self._keys, keys)),
                np.concatenate((self._counts, np.full(len(keys), sign, np.int64))),
            )
        if len(negative):
            keys = self._bucket_keys(-negative)
            self._neg_keys, self._neg_counts = _collapse(
                np.concatenate((self._neg_keys, keys)),
                np.concatenate((self._neg_counts, np.full(len(keys), sign, np.int64))),
            )

    def remove(self, values: F64) -> None:
        """Take out values added before (a joined score replacing an older one).

        The minimum and maximum stay as bounds: the order statistics are still within the
        relative error, only no longer exact at the ends.
        """
        self.add(values, -1)
        self._exact_bounds = False

    def merge(self, other: LogSketch) -> LogSketch:
        """A new sketch of both sketches' values (same relative accuracy)."""
        if other._alpha != self._alpha:
            raise ValueError("sketches of different relative accuracy do not merge")
        out = LogSketch(self._alpha)
        out._keys, out._counts = _collapse(
            np.concatenate((self._keys, other._keys)),
            np.concatenate((self._counts, other._counts)),
        )
        out._neg_keys, out._neg_counts = _collapse(
            np.concatenate((self._neg_keys, other._neg_keys)),
            np.concatenate((self._neg_counts, other._neg_counts)),
        )
        out._zeros = self._zeros + other._zeros
        out._min, out._max = min(self._min, other._min), max(self._max, other._max)
        out._exact_bounds = self._exact_bounds and other._exact_bounds
        return out

    def order_statistics(self, ranks: I64) -> F64:
        """Estimates of the values at 0-based ``ranks`` of the sorted values (not empty)."""
        gamma = (1 + self._alpha) / (1 - self._alpha)
        # Buckets in ascending value order: negatives (largest magnitude first), zero, positives.
        neg = -2 * np.power(gamma, self._neg_keys[::-1].astype(np.float64)) / (gamma + 1)
        pos = 2 * np.power(gamma, self._keys.astype(np.float64)) / (gamma + 1)
        values = np.concatenate((neg, [0.0], pos))
        counts = np.concatenate((self._neg_counts[::-1], [self._zeros], self._counts))
        ends = np.cumsum(counts)
        if not len(ends) or ends[-1] == 0:
            raise ValueError("an empty sketch has no order statistics")
        found: F64 = values[np.searchsorted(ends, ranks, side="right")]
        found = np.clip(found, self._min, self._max)
        if self._exact_bounds:
            found[ranks == 0] = self._min
            found[ranks == ends[-1] - 1] = self._max
        return found

    def percentiles(self, fractions: F64) -> F64:
        """Like ``np.percentile(values, 100 * fractions)`` (linear), within the relative error."""
        n = len(self)
        virtual = (n - 1) * fractions
        below = np.floor(virtual).astype(np.int64)
        after = np.minimum(below + 1, n - 1)
        gamma = virtual - below
        a, b = self.order_statistics(below), self.order_statistics(after)
        result: F64 = a + (b - a) * gamma
        return result

    def systematic_sample(self, size: int) -> tuple[float, ...]:
        """``size`` evenly spaced order statistics (as ``window_stats.systematic_sample``)."""
        n = len(self)
        ranks = np.linspace(0, n - 1, min(size, n)).round().astype(np.int64)
        return tuple(self.order_statistics(ranks).tolist())
