"""``[processor]``: the Bytewax dataflow's windows, parallelism, recovery and prices."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from core.errors import ConfigurationError
from core.settings.rules import Duration, Int, Table
from core.settings.spec import setting

__all__ = ["ModelPrice", "ProcessorSettings"]


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A price that overrides or adds to the genai-prices table (USD per million tokens)."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None


def prices(raw: Mapping[str, Any]) -> dict[str, ModelPrice]:
    """``{MODEL = {input_per_mtok, output_per_mtok, cache_read_per_mtok}}`` as typed prices."""
    out: dict[str, ModelPrice] = {}
    for model, value in raw.items():
        try:
            fields_ = {str(k).lower(): v for k, v in (value or {}).items()}
            price = ModelPrice(**fields_)
            values = [price.input_per_mtok, price.output_per_mtok, price.cache_read_per_mtok]
            if not all(v is None or (isinstance(v, int | float) and v >= 0) for v in values):
                raise TypeError("prices must be numbers >= 0")
        except (TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"invalid settings: processor.prices.{model} must be a table of "
                "input_per_mtok, output_per_mtok (and optional cache_read_per_mtok), numbers >= 0, "
                f"but it is {value!r} ({exc})"
            ) from exc
        out[str(model)] = price
    return out


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """The Bytewax dataflow."""

    tumbling_window: timedelta = setting(timedelta(seconds=60), "length of the tumbling windows")
    sliding_window: timedelta = setting(timedelta(seconds=300), "length of the sliding windows")
    sliding_step: timedelta = setting(
        timedelta(seconds=60), "step of the sliding windows (at most their length)"
    )
    allowed_lateness: timedelta = setting(
        timedelta(seconds=30),
        "watermark delay; later events are counted as late, never silently dropped",
        Duration(positive=False),
    )
    dedup_ttl: timedelta = setting(
        timedelta(hours=1), "how long an `event_id` is remembered (event time)"
    )
    feedback_join_window: timedelta = setting(
        timedelta(minutes=10), "how long feedback waits for its call (and a call for feedback)"
    )
    workers: int = setting(1, "Bytewax workers per process", Int(1, 256))
    processes: int = setting(1, "Bytewax processes", Int(1, 256))
    recovery: bool = setting(True, "crash recovery (Bytewax snapshots)")
    recovery_dir: str = setting(
        "", "folder of the recovery snapshots", shown="`<data_dir>/recovery`"
    )
    recovery_partitions: int = setting(1, "recovery partitions", Int(1, 1024))
    snapshot_interval: timedelta = setting(
        timedelta(seconds=10), "how often state is snapshotted (whole seconds)"
    )
    max_clock_skew: timedelta = setting(
        timedelta(hours=1),
        "events dated further than this beyond the wall clock go to the DLQ (one broken clock "
        "would otherwise make its app's later events late)",
    )
    database_retry_max_delay: timedelta = setting(
        timedelta(seconds=30),
        "longest wait between two attempts of a write while the database is away",
    )
    migrate_on_start: bool = setting(
        True,
        "each dataflow process migrates the schema (under a lock) and creates its topics at "
        "start; `false`: it waits, logging why, until `llmopt migrate` has",
    )
    prices: Mapping[str, ModelPrice] = setting(
        {},
        "prices (USD per million tokens) that override or add to genai-prices",
        Table("a table {MODEL = {input_per_mtok, output_per_mtok, cache_read_per_mtok}}", prices),
        shown="empty",
    )
