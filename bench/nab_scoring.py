"""NAB scoring, implemented from the rules in the NAB subset's README (no NAB code reused).

The Numenta Anomaly Benchmark scores a detector on one file like this:

* The first 15 % of the file's points are the probationary period: detections there are ignored
  (the detector is still learning).
* Every labelled anomaly window ``[start, end]`` (inclusive) is a target. Only the first scored
  detection inside a window counts; it earns ``tp_weight * scaled_sigmoid(x)`` where
  ``x = (t - end) / (end - start)`` runs from -1 at the left edge to 0 at the right edge, so an
  early detection earns ``2 * sigmoid(5) - 1 ≈ 0.9866`` and one at the right edge earns 0.
  Later detections inside the same window are neither rewarded nor penalised.
* A detection outside every window is a false positive and costs
  ``fp_weight * scaled_sigmoid(y)`` (a negative number in ``[-fp_weight, 0)``), where ``y`` is its
  distance past the right edge of the preceding window in units of that window's width. A false
  positive right after a window is therefore cheap and one far from it (``y > 3``) or before any
  window costs the full ``-fp_weight``. The README only says "cost ``fp`` weight each"; this
  distance weighting is the rule of NAB's published scorer (Lavin & Ahmad, 2015), which the README
  summarises. Positions are measured in time; on NAB's regular 5-minute grids that is the same as
  NAB's measure in rows.
* Every window without a detection costs ``-fn_weight``.

``scaled_sigmoid(v) = 2 / (1 + exp(5 v)) - 1`` for ``v <= 3`` and ``-1`` beyond (NAB's cut-off).

Normalisation: ``score_null`` is the raw score of a detector that never fires
(``-fn_weight`` per window), ``score_perfect`` that of one that fires exactly at every window's
left edge (``tp_weight * scaled_sigmoid(-1)`` per window), and the normalised score is
``100 * (raw - null) / (perfect - null)``. Over several files, as in NAB, the raw, null and perfect
scores are summed first and normalised once (:func:`total_normalised`).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROBATION_SHARE",
    "FileScore",
    "Profile",
    "Series",
    "Window",
    "load_profiles",
    "load_series",
    "load_windows",
    "probation_length",
    "scaled_sigmoid",
    "score_file",
    "total_normalised",
]

PROBATION_SHARE = 0.15  # the unscored head of every file
_SIGMOID_STEEPNESS = 5.0
_SIGMOID_CUTOFF = 3.0  # beyond this many window widths past a window, an FP costs the full weight

Window = tuple[datetime, datetime]


@dataclass(frozen=True, slots=True)
class Profile:
    """The weights of one NAB application profile (``config/profiles.json``)."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


@dataclass(frozen=True, slots=True)
class Series:
    """One NAB data file: naive timestamps read as UTC, and the values."""

    timestamps: list[datetime]
    values: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FileScore:
    """The NAB score of one detector on one file under one profile.

    Attributes:
        raw: The sum of the rewards and costs.
        null: The raw score of a detector that detects nothing.
        perfect: The raw score of a detector that fires at every window's left edge.
        true_positives: Windows with a scored detection.
        false_positives: Scored detections outside every window.
        false_negatives: Windows without a detection.
    """

    raw: float
    null: float
    perfect: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def normalised(self) -> float | None:
        """``100 * (raw - null) / (perfect - null)``; ``None`` for a file without windows."""
        span = self.perfect - self.null
        if span == 0:
            return None
        return 100.0 * (self.raw - self.null) / span


def scaled_sigmoid(position: float) -> float:
    """NAB's scaled sigmoid: ``2 * sigmoid(-5 * position) - 1``, and -1 past ``position = 3``.

    Args:
        position: The relative position: -1 at a window's left edge, 0 at its right edge,
            positive (in window widths) past it.

    Returns:
        A value in ``[-1, 1)``: about 0.9866 at -1, 0 at 0, negative past the window.
    """
    if position > _SIGMOID_CUTOFF:
        return -1.0
    return 2.0 / (1.0 + math.exp(_SIGMOID_STEEPNESS * position)) - 1.0


def probation_length(points: int, share: float = PROBATION_SHARE) -> int:
    """The number of leading points that are not scored: ``floor(share * points)``."""
    return math.floor(share * points)


def _width_seconds(window: Window) -> float:
    return (window[1] - window[0]).total_seconds()


def score_file(
    timestamps: Sequence[datetime],
    windows: Sequence[Window],
    detections: Iterable[datetime],
    profile: Profile,
) -> FileScore:
    """Score one detector's detections on one file.

    Args:
        timestamps: Every point of the file, in order (only their count and the timestamp at
            which the probationary period ends are used).
        windows: The labelled anomaly windows, ``(start, end)`` inclusive, not overlapping.
        detections: When the detector fired; duplicates count once (NAB scores one detection per
            point).
        profile: The weights.

    Returns:
        The raw score with its null and perfect references and the TP/FP/FN counts.
    """
    ordered = sorted(windows)
    n_windows = len(ordered)
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * scaled_sigmoid(-1.0) * n_windows
    probation = probation_length(len(timestamps))
    scored_from = timestamps[probation] if probation < len(timestamps) else None

    detected = [False] * n_windows
    raw = 0.0
    false_positives = 0
    for t in sorted(set(detections)):
        if scored_from is None or t < scored_from:
            continue
        inside = next((i for i, (a, b) in enumerate(ordered) if a <= t <= b), None)
        if inside is not None:
            if detected[inside]:
                continue  # only the first detection in a window counts
            detected[inside] = True
            end = ordered[inside][1]
            width = _width_seconds(ordered[inside])
            x = (t - end).total_seconds() / width if width > 0 else 0.0
            raw += profile.tp_weight * scaled_sigmoid(x)
            continue
        false_positives += 1
        before = [w for w in ordered if w[1] < t]
        if not before:
            raw -= profile.fp_weight
            continue
        prev = before[-1]
        width = _width_seconds(prev)
        y = (t - prev[1]).total_seconds() / width if width > 0 else math.inf
        raw += profile.fp_weight * scaled_sigmoid(y)
    true_positives = sum(detected)
    misses = n_windows - true_positives
    raw -= profile.fn_weight * misses
    return FileScore(raw, null, perfect, true_positives, false_positives, misses)


def total_normalised(scores: Iterable[FileScore]) -> float:
    """Normalise over several files as NAB does: sum raw, null and perfect, then scale to 100.

    Raises:
        ValueError: When the files hold no window at all (nothing to normalise against).
    """
    items = list(scores)
    raw = sum(s.raw for s in items)
    null = sum(s.null for s in items)
    perfect = sum(s.perfect for s in items)
    if perfect == null:
        raise ValueError("no labelled window in these files: the score cannot be normalised")
    return 100.0 * (raw - null) / (perfect - null)


def _parse_time(text: str) -> datetime:
    """A NAB timestamp (``2014-02-26 13:45:00[.000000]``, naive = UTC) as an aware datetime."""
    return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)


def load_windows(labels_dir: Path) -> dict[str, list[Window]]:
    """Read ``combined_windows.json``: windows per file key (``realAWSCloudwatch/<file>.csv``).

    Args:
        labels_dir: The folder holding ``combined_windows.json``.

    Returns:
        The windows of every file, as aware UTC ``(start, end)`` pairs in time order.
    """
    raw: Mapping[str, list[list[str]]] = json.loads(
        (labels_dir / "combined_windows.json").read_text()
    )
    return {
        key: sorted((_parse_time(a), _parse_time(b)) for a, b in pairs)
        for key, pairs in raw.items()
    }


def load_profiles(path: Path) -> dict[str, Profile]:
    """Read NAB's ``profiles.json`` (``{name: {"CostMatrix": {"tpWeight": …}}}``)."""
    raw: Mapping[str, Mapping[str, Mapping[str, float]]] = json.loads(path.read_text())
    return {
        name: Profile(
            name,
            tp_weight=float(body["CostMatrix"]["tpWeight"]),
            fp_weight=float(body["CostMatrix"]["fpWeight"]),
            fn_weight=float(body["CostMatrix"]["fnWeight"]),
        )
        for name, body in raw.items()
    }


def load_series(path: Path) -> Series:
    """Read a NAB data file (``timestamp,value`` with a header; naive timestamps are UTC)."""
    timestamps: list[datetime] = []
    values: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for row in reader:
            if not row:
                continue
            timestamps.append(_parse_time(row[0]))
            values.append(float(row[1]))
    return Series(timestamps, np.asarray(values, dtype=np.float64))
