"""What the server streams follow: configs (pub/sub plus polling), decisions and windows (polling).

The dataflow may run in another process, so no stream relies on a message alone: a config watcher
also re-reads the newest version every ``grpc.watch_poll_interval`` (a missed message is late,
never lost), and decisions, verdicts and windows are polled from storage through the service
layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec
from sqlalchemy.exc import InterfaceError, OperationalError

from api.service import (
    ConfigRead,
    ConfigService,
    DeploymentQueries,
    MetricsQueries,
    RecommendationService,
)
from core.app_config import AppConfig
from core.decisions import Decision, Deployment, Verdict
from core.errors import NotFoundError, StorageUnavailableError
from core.stats import WindowStats
from rollout.config_manager import config_channel
from storage.cache import Cache

__all__ = ["DecisionChange", "follow_config", "follow_decisions", "follow_windows"]

_log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _newest_or_none(configs: ConfigService, app: str) -> AppConfig | None:
    """The newest version, or ``None`` while there is none or the database is away."""
    try:
        return await asyncio.to_thread(_newest, configs, app)
    except (StorageUnavailableError, OperationalError, InterfaceError) as exc:
        _log.warning("config watch of %s: database unavailable, waiting: %s", app, exc)
        return None


def _newest(configs: ConfigService, app: str) -> AppConfig | None:
    try:
        found = configs.versions(app, limit=1)
    except NotFoundError:
        return None
    return found[0].as_config() if found else None


async def follow_config(
    configs: ConfigService,
    cache: Cache,
    app: str,
    *,
    after_version: int = 0,
    poll_s: float = 1.0,
) -> AsyncIterator[tuple[AppConfig, ConfigRead | None]]:
    """The active config of ``app`` (when newer than ``after_version``), then each newer one.

    The first comes from :meth:`ConfigService.read` (with the :class:`ConfigRead` that says
    whether it is the last known config, the database being away); later ones from the
    database or the app's channel (``None``). A poll that finds the database away is skipped:
    the stream waits for it instead of failing.
    """
    messages: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

    async def listen() -> None:
        try:
            async for raw in cache.subscribe(config_channel(app)):
                with contextlib.suppress(asyncio.QueueFull):  # polling catches up
                    messages.put_nowait(raw)
        except Exception as exc:  # the cache is down: polling alone still follows
            _log.warning("config pub/sub unavailable for %s, polling: %s", app, exc)

    listener = asyncio.create_task(listen())
    last = after_version
    try:
        read: ConfigRead | None = None
        try:
            read = await configs.read(app)
            current: AppConfig | None = msgspec.json.decode(read.raw, type=AppConfig)
        except NotFoundError:
            current = None
        while True:
            if current is not None and current.version > last:
                last = current.version
                yield current, read
            read = None
            try:
                raw = await asyncio.wait_for(messages.get(), poll_s)
            except TimeoutError:
                current = await _newest_or_none(configs, app)
                continue
            try:
                current = msgspec.json.decode(raw, type=AppConfig)
            except (msgspec.DecodeError, msgspec.ValidationError):
                current = await _newest_or_none(configs, app)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener


@dataclass(frozen=True)
class DecisionChange:
    """A new decision, a decision whose status changed, or a new verdict (with its deployment)."""

    kind: Literal["decision.created", "decision.updated", "verdict"]
    decision: Decision | None = None
    verdict: Verdict | None = None
    deployment: Deployment | None = None


_OPEN = ("running", "paused", "watching")


async def follow_decisions(
    recommendations: RecommendationService,
    deployments: DeploymentQueries,
    app: str | None,
    *,
    since: datetime | None = None,
    poll_s: float = 1.0,
    recent: int = 500,
) -> AsyncIterator[DecisionChange]:
    """Decisions (the ``recent`` newest, so status changes are seen) and verdicts as stored.

    With ``since``, what was stored from then on is replayed first; else only what happens after
    the call.
    """
    statuses: dict[str, str] = {}
    verdicts: set[str] = set()
    updated: dict[str, datetime] = {}
    replay = since is not None
    first = True
    while True:
        page = await asyncio.to_thread(recommendations.list, app=app, limit=recent)
        changes: list[DecisionChange] = []
        for decision in reversed(page.items):  # oldest first
            known = statuses.get(decision.id)
            statuses[decision.id] = decision.status
            if known is None:
                if not first or (replay and since is not None and decision.created_at >= since):
                    changes.append(DecisionChange("decision.created", decision=decision))
            elif known != decision.status:
                changes.append(DecisionChange("decision.updated", decision=decision))
        listed = await asyncio.to_thread(deployments.list, app=app, limit=100)
        for summary in reversed(listed.items):
            if updated.get(summary.id) == summary.updated_at and summary.status not in _OPEN:
                continue
            updated[summary.id] = summary.updated_at
            full = await asyncio.to_thread(deployments.get, summary.id)
            for verdict in full.verdicts:
                if verdict.id in verdicts:
                    continue
                verdicts.add(verdict.id)
                if not first or (replay and since is not None and verdict.created_at >= since):
                    changes.append(DecisionChange("verdict", verdict=verdict, deployment=full))
        first = False
        for change in changes:
            yield change
        await asyncio.sleep(poll_s)


def _window_key(w: WindowStats) -> tuple[str, datetime, str, str, str, int | None]:
    return (w.kind, w.window_start, w.task, w.model, w.variant, w.config_version)


async def follow_windows(
    metrics: MetricsQueries,
    app: str,
    *,
    task: str | None = None,
    kind: Literal["tumbling", "sliding"] = "tumbling",
    since: datetime | None = None,
    poll_s: float = 1.0,
    lookback: timedelta = timedelta(hours=1),
    clock: Clock = _utc_now,
) -> AsyncIterator[WindowStats]:
    """Windows of ``app`` as they are stored, oldest first.

    With ``since``, stored windows starting from then are replayed first; else only windows
    stored after the call. Each poll looks ``lookback`` back (late windows included).
    """
    seen: set[tuple[str, datetime, str, str, str, int | None]] = set()
    start = since if since is not None else clock() - lookback
    emit = since is not None
    while True:
        summary = await asyncio.to_thread(
            metrics.summary, app, task, kind=kind, since=start, limit=10_000
        )
        for window in summary.windows:
            key = _window_key(window)
            if key in seen:
                continue
            seen.add(key)
            if emit:
                yield window
        emit = True
        start = clock() - lookback
        seen = {k for k in seen if k[1] >= start}
        await asyncio.sleep(poll_s)
