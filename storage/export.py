"""Every stored window, insight or decision of a time range, in chunks, for ``llmopt export``.

Rows come back as the domain objects the API serves (:class:`~core.stats.WindowStats`,
:class:`~core.insights.Insight`, :class:`~core.decisions.Decision`), oldest first, read with
a server-side cursor where the driver has one (``yield_per``), so an export of a large
database holds one chunk of rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import StorageUnavailableError
from storage.decisions import decision_of_row
from storage.insights import insight_of_row
from storage.models import DecisionRow, InsightRow, WindowRow
from storage.windows import window_of_row

__all__ = ["ExportKind", "stored_rows"]

ExportKind = Literal["windows", "insights", "decisions"]

# Per kind: the row model, the time its range filters, the domain object of a row.
_TABLES: dict[str, tuple[Any, InstrumentedAttribute[datetime], Any]] = {
    "windows": (WindowRow, WindowRow.window_start, window_of_row),
    "insights": (InsightRow, InsightRow.window_start, insight_of_row),
    "decisions": (DecisionRow, DecisionRow.created_at, decision_of_row),
}


def stored_rows(
    engine: Engine,
    kind: ExportKind,
    *,
    app: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk: int = 10_000,
) -> Iterator[list[Any]]:
    """Stored rows of ``kind`` in ``[since, until)``, oldest first, ``chunk`` at a time.

    Args:
        engine: The optimizer's database.
        kind: ``windows`` and ``insights`` are filtered by their window's start,
            ``decisions`` by their creation time.
        app: Only this app's rows (all apps when None).
        since: Inclusive lower bound (none when None).
        until: Exclusive upper bound (none when None).
        chunk: Rows per list yielded.

    Yields:
        Lists of at most ``chunk`` domain objects.

    Raises:
        StorageUnavailableError: The database cannot be read (unreachable, or its schema is
            not migrated: ``llmopt migrate``).
    """
    model, at, convert = _TABLES[kind]
    stmt = select(model)
    if app is not None:
        stmt = stmt.where(model.app == app)
    if since is not None:
        stmt = stmt.where(at >= since)
    if until is not None:
        stmt = stmt.where(at < until)
    stmt = stmt.order_by(at, model.id).execution_options(yield_per=chunk)
    try:
        with Session(engine) as session:
            for rows in session.scalars(stmt).partitions():
                yield [convert(r) for r in rows]
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        first = str(exc).splitlines()[0][:300]
        raise StorageUnavailableError(f"cannot read {kind} from {where}: {first}") from exc
