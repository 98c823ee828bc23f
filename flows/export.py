"""``llmopt export``: windows, insights and decisions as Parquet files for notebooks.

From the optimizer's database (:func:`storage.export.stored_rows`) or from a backtest's output
folder (``windows.jsonl``, ``insights.jsonl``, ``decisions.jsonl``), each kind becomes one file
``<kind>.parquet`` written by polars. Columns follow the objects' fields as the REST API and
CONTRACT.md §3 name them:

- strings, integers, floats and booleans as such (nullable where the field is);
- times as ``Datetime(us, UTC)``;
- fixed-shape objects (``latency_ms``, ``ttft_ms``, ``quality``, ``expected_impact``) as
  struct columns (``df.unnest("latency_ms")`` in a notebook);
- free-form maps and lists (``errors_by_type``, ``evidence``, ``action``, ``shadow``,
  ``rollback_plan``) as JSON text (``pl.col("evidence").str.json_decode()``).

The judge's value samples of a window are not stored and not exported. A backtest's
``windows.jsonl`` holds every emission (each correction has its own ``revision``); the export
keeps them all, as the file does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl
from sqlalchemy import Engine

from core.decisions import Decision
from core.errors import ValidationError
from core.insights import Insight
from core.stats import WindowStats
from storage.export import ExportKind, stored_rows

__all__ = [
    "KINDS",
    "ExportFilter",
    "export_backtest",
    "export_database",
    "json_columns",
    "parquet_schema",
]

KINDS: dict[ExportKind, type[msgspec.Struct]] = {
    "windows": WindowStats,
    "insights": Insight,
    "decisions": Decision,
}
_NOT_STORED = frozenset({"latency_sample", "quality_sample"})
_CHUNK = 10_000


@dataclass(frozen=True)
class ExportFilter:
    """Which rows to export: one app (all when None) and a time range ``[since, until)``.

    Windows and insights are filtered by their window's start, decisions by their creation.
    """

    app: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            at = getattr(self, name)
            if at is not None and at.tzinfo is None:
                raise ValidationError(f"{name} {at.isoformat()} has no UTC offset")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValidationError(
                f"since {self.since.isoformat()} is not before until {self.until.isoformat()}"
            )

    def keeps(self, app: str, at: datetime) -> bool:
        """Whether a row of ``app`` at ``at`` is in the export."""
        return (
            (self.app is None or app == self.app)
            and (self.since is None or at >= self.since)
            and (self.until is None or at < self.until)
        )


def _fields(cls: type[msgspec.Struct]) -> list[msgspec.inspect.Field]:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType)
    return [f for f in info.fields if f.name not in _NOT_STORED]


def _dtype(t: msgspec.inspect.Type) -> pl.DataType | None:
    """The polars type of a field's type; None for free-form values (stored as JSON text)."""
    if isinstance(t, msgspec.inspect.UnionType):
        kinds = [u for u in t.types if not isinstance(u, msgspec.inspect.NoneType)]
        return _dtype(kinds[0]) if len(kinds) == 1 else None
    if isinstance(t, msgspec.inspect.StrType):
        return pl.String()
    if isinstance(t, msgspec.inspect.LiteralType):
        return pl.String() if all(isinstance(v, str) for v in t.values) else None
    if isinstance(t, msgspec.inspect.BoolType):
        return pl.Boolean()
    if isinstance(t, msgspec.inspect.IntType):
        return pl.Int64()
    if isinstance(t, msgspec.inspect.FloatType):
        return pl.Float64()
    if isinstance(t, msgspec.inspect.DateTimeType):
        return pl.Datetime("us", "UTC")
    if isinstance(t, msgspec.inspect.StructType):
        inner = {f.name: _dtype(f.type) for f in t.fields}
        if any(d is None for d in inner.values()):
            return None
        return pl.Struct({name: d for name, d in inner.items() if d is not None})
    return None


def parquet_schema(kind: ExportKind) -> dict[str, pl.DataType]:
    """The columns of ``<kind>.parquet``, in field order (JSON text columns as ``String``)."""
    return {f.name: _dtype(f.type) or pl.String() for f in _fields(KINDS[kind])}


def json_columns(kind: ExportKind) -> list[str]:
    """The columns of ``<kind>.parquet`` that hold JSON text (free-form maps and lists)."""
    return [f.name for f in _fields(KINDS[kind]) if _dtype(f.type) is None]


def _frame(kind: ExportKind, objects: Sequence[msgspec.Struct]) -> pl.DataFrame:
    schema = parquet_schema(kind)
    as_json = set(json_columns(kind))
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    for obj in objects:
        data = msgspec.to_builtins(obj, builtin_types=(datetime,))
        for name, values in columns.items():
            value = data[name]
            values.append(msgspec.json.encode(value).decode() if name in as_json else value)
    return pl.DataFrame(columns, schema=schema)


def _write(kind: ExportKind, chunks: Iterable[Sequence[msgspec.Struct]], out: Path) -> int:
    frames = [_frame(kind, chunk) for chunk in chunks if chunk]
    frame = pl.concat(frames) if frames else _frame(kind, [])
    out.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(out / f"{kind}.parquet")
    return frame.height


def export_database(
    engine: Engine, out: Path, kinds: Sequence[ExportKind], where: ExportFilter
) -> dict[ExportKind, int]:
    """Write ``<kind>.parquet`` in ``out`` for each kind from the database; rows per kind."""
    return {
        kind: _write(
            kind,
            stored_rows(
                engine, kind, app=where.app, since=where.since, until=where.until, chunk=_CHUNK
            ),
            out,
        )
        for kind in kinds
    }


def _time_of(obj: msgspec.Struct) -> datetime:
    at = obj.created_at if isinstance(obj, Decision) else obj.window_start  # type: ignore[attr-defined]
    assert isinstance(at, datetime)
    return at


def _objects(path: Path, kind: ExportKind, where: ExportFilter) -> Iterator[list[msgspec.Struct]]:
    decoder = msgspec.json.Decoder(KINDS[kind])
    chunk: list[msgspec.Struct] = []
    with path.open("rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ValidationError(f"{path}:{n} is not a {kind[:-1]}: {exc}") from exc
            if where.keeps(obj.app, _time_of(obj)):  # type: ignore[attr-defined]
                chunk.append(obj)
            if len(chunk) >= _CHUNK:
                yield chunk
                chunk = []
    yield chunk


def export_backtest(
    folder: Path, out: Path, kinds: Sequence[ExportKind], where: ExportFilter
) -> dict[ExportKind, int]:
    """Write ``<kind>.parquet`` in ``out`` for each kind from a backtest's output folder.

    Raises:
        ValidationError: When ``folder`` lacks a kind's ``<kind>.jsonl`` or a line of it is
            not an object of that kind.
    """
    missing = [f"{k}.jsonl" for k in kinds if not (folder / f"{k}.jsonl").is_file()]
    if missing:
        raise ValidationError(
            f"{folder} is not a backtest's output folder: no {', '.join(missing)}"
        )
    return {
        kind: _write(kind, _objects(folder / f"{kind}.jsonl", kind, where), out) for kind in kinds
    }
