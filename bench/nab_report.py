"""The per-category table of :mod:`bench.nab`, with the published detectors' scores beside ours.

The published standard-profile scores are those of the NAB subset's README (NAB's per-file
results, normalised over each group of files as NAB does); they are reference numbers, not
measured here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.table import Table

from bench.nab_scoring import FileScore, total_normalised

__all__ = ["NO_ANOMALY", "PUBLISHED", "PUBLISHED_FP", "FileResult", "render_categories"]

NO_ANOMALY = "artificialNoAnomaly"
PUBLISHED_NAMES = ("ARTime", "HTM", "CAD OSE")
PUBLISHED: dict[str, tuple[float, float, float]] = {
    "realAWSCloudwatch": (69.5, 73.4, 71.5),
    "realAdExchange": (75.1, 76.9, 72.0),
    "realTraffic": (86.9, 82.5, 91.2),
    "realTweets": (81.8, 68.0, 74.5),
    "artificialWithAnomaly": (70.3, 70.2, 73.0),
    "all": (77.0, 73.0, 75.4),
}
"""Standard-profile scores (ARTime, Numenta HTM, CAD OSE) per category and over all 51 files."""
PUBLISHED_FP: tuple[float, float, float] = (-0.11, -0.44, -0.22)
"""Their raw false-positive cost on artificialNoAnomaly (0 = no detection)."""


@dataclass(frozen=True)
class FileResult:
    """The detections and scores of both detectors on one file."""

    key: str
    windows: int
    ours: list[datetime]
    baseline: list[datetime]
    ours_scores: dict[str, FileScore]
    baseline_scores: dict[str, FileScore]
    backtest_seconds: float
    insights: int

    @property
    def category(self) -> str:
        """The folder of the file (``realTweets/...`` → ``realTweets``)."""
        return self.key.split("/", 1)[0]


def render_categories(results: Sequence[FileResult], wall: float, console: Console) -> None:
    """Print standard scores per category and overall, with the published ones beside them."""
    table = Table(
        title="NAB per category, standard profile (0 = detect nothing, 100 = perfect)",
        caption=f"{NO_ANOMALY}: raw false-positive cost (0 = no detection) and detections",
    )
    for name in ("category", "files", "windows", "detections", "ours", "low FP", "low FN"):
        table.add_column(name, justify="left" if name == "category" else "right")
    for name in PUBLISHED_NAMES:
        table.add_column(name, justify="right")
    table.add_column("WG (this script)", justify="right")
    categories = sorted({r.category for r in results})
    for category in [*categories, "all"]:
        group = [r for r in results if category in ("all", r.category)]
        published = PUBLISHED.get(category)
        if category == NO_ANOMALY:
            scores = [sum(r.ours_scores[p].raw for r in group) for p in _PROFILES]
            cells = [f"raw {v:+.2f}" for v in scores]
            pub = [f"raw {v:+.2f}" for v in PUBLISHED_FP]
            wg = f"raw {sum(r.baseline_scores['standard'].raw for r in group):+.2f}"
        else:
            cells = [f"{total_normalised(r.ours_scores[p] for r in group):.1f}" for p in _PROFILES]
            pub = ["" if published is None else f"{v:.1f}" for v in published or (0, 0, 0)]
            wg = f"{total_normalised(r.baseline_scores['standard'] for r in group):.1f}"
        if category == "all":
            table.add_section()
        table.add_row(
            category,
            str(len(group)),
            str(sum(r.windows for r in group)),
            str(sum(len(r.ours) for r in group)),
            *cells,
            *pub,
            wg,
            style="bold" if category == "all" else None,
        )
    console.print(table)
    seconds = sum(r.backtest_seconds for r in results)
    console.print(f"wall time {wall:.1f} s (backtests or replays {seconds:.1f} s)")


_PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
