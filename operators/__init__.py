"""Pure logic the dataflow wires: per-app windows, dedup, window stats, pricing."""

from operators.app_windows import AppWindows
from operators.dedup import DedupState
from operators.pricing import PriceTable
from operators.window_stats import Columns, summarize, summarize_columns
from operators.windower import WindowSpec

__all__ = [
    "AppWindows",
    "Columns",
    "DedupState",
    "PriceTable",
    "WindowSpec",
    "summarize",
    "summarize_columns",
]
