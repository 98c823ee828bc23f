"""Which calls of a period belong to which side of a deployment: by variant AND config version.

A call counts for a side only when it was served under that side's config: calls still in
flight, cached or late from before a change carry an older ``config_version`` and would
otherwise land on the wrong side (and, at promotion, mix both models into one side).

- while rolling out: the **canary** side is ``variant="canary"`` served under the deployment's
  canary version; the **baseline** side is ``variant="baseline"`` served under any version
  since the rollout began;
- while watched after promotion: **current** is ``variant="baseline"`` under the promoted
  version or later, **holdback** is ``variant="canary"`` under the holdback's version.

For a model change the model must match too: the canary side serves the candidate, the
baseline side anything else. Windows without a ``config_version`` (applications that do not
report it) are taken by variant alone.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.stats import PairedQuality, WindowStats
from operators.side_summary import SideSummary

__all__ = ["rollout_sides", "shadow_pairs", "watch_sides"]


def _since(w: WindowStats, version: int) -> bool:
    return w.config_version is None or w.config_version >= version


def _exactly(w: WindowStats, version: int) -> bool:
    return w.config_version is None or w.config_version == version


def rollout_sides(
    windows: Iterable[WindowStats], canary_version: int, candidate: str | None
) -> tuple[SideSummary, SideSummary]:
    """``(baseline, canary)`` of a period while a change rolls out."""
    base, canary = [], []
    for w in windows:
        if w.kind != "tumbling":
            continue
        if w.variant == "canary":
            if _exactly(w, canary_version) and (candidate is None or w.model == candidate):
                canary.append(w)
        elif _since(w, canary_version) and (candidate is None or w.model != candidate):
            base.append(w)
    return SideSummary.of(base), SideSummary.of(canary)


def watch_sides(
    windows: Iterable[WindowStats], promoted_version: int, promoted_model: str | None
) -> tuple[SideSummary, SideSummary]:
    """``(holdback, current)`` of a period while a promoted change is watched."""
    holdback, current = [], []
    for w in windows:
        if w.kind != "tumbling":
            continue
        if w.variant == "canary":
            if _exactly(w, promoted_version) and (
                promoted_model is None or w.model != promoted_model
            ):
                holdback.append(w)
        elif _since(w, promoted_version) and (promoted_model is None or w.model == promoted_model):
            current.append(w)
    return SideSummary.of(holdback), SideSummary.of(current)


def shadow_pairs(sides: Iterable[SideSummary], model: str | None) -> PairedQuality | None:
    """The sides' shadow pairs for ``model`` (the candidate run on the same requests), pooled."""
    if model is None:
        return None
    out: PairedQuality | None = None
    for side in sides:
        found = side.shadow.get(model)
        if found is not None:
            out = found if out is None else out.merge(found)
    return out
