"""The integrations service: delivers the outbox to Slack, Jira and GitHub every poll interval.

:class:`SqlOutboxStore` adapts ``storage.outbox`` to the dispatcher's
:class:`~integrations.outbox.OutboxStore`: each claim is one transaction holding its row
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL) until the outcome is recorded, so replicas never
deliver one row at once and a crash mid-delivery leaves the row due (at least once).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from collector.producer import TelemetryProducer
from core.settings import Settings
from integrations.dispatcher import Dispatcher
from integrations.factory import Clients, build_clients
from integrations.outbox import PARK_FOR, OutboxClaim
from integrations.routing import Router
from orchestrator.service import HealthResult, HealthStatus, ServiceBase
from orchestrator.services.connections import (
    connections_fingerprint,
    load_connections,
    with_connections,
)
from orchestrator.services.prompt_rewriter import PromptRewriter
from storage.database import create_db_engine
from storage.outbox import (
    OutboxEntry,
    claim_due,
    find_outbox,
    mark_delivered,
    mark_failed,
    outbox_backlog,
)

__all__ = ["IntegrationsService", "SqlOutboxStore"]

_log = structlog.get_logger(__name__)


class SqlOutboxStore:
    """``storage.outbox`` as an :class:`~integrations.outbox.OutboxStore`.

    Args:
        engine: The database engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def claim(self, now: datetime) -> OutboxClaim | None:
        """Take the oldest due row in a transaction of its own."""
        session = Session(self._engine)
        try:
            entries = claim_due(session, now=now, limit=1)
        except BaseException:
            session.close()
            raise
        if not entries:
            session.rollback()
            session.close()
            return None
        return OutboxClaim(entries[0], session)

    def delivered(self, claim: OutboxClaim, *, now: datetime, result: Mapping[str, Any]) -> None:
        """Mark delivered and commit."""
        session: Session = claim.handle
        with session:
            mark_delivered(session, claim.entry.id, now=now, result=dict(result))
            session.commit()

    def failed(
        self,
        claim: OutboxClaim,
        *,
        error: str,
        next_attempt_at: datetime,
        result: Mapping[str, Any],
    ) -> None:
        """Record the failed attempt and commit."""
        session: Session = claim.handle
        with session:
            mark_failed(
                session,
                claim.entry.id,
                error=error,
                next_attempt_at=next_attempt_at,
                result=dict(result),
            )
            session.commit()

    def release(self, claim: OutboxClaim) -> None:
        """Roll the claim back: the row is due again as it was."""
        session: Session = claim.handle
        with session:
            session.rollback()

    def find(self, key: str) -> OutboxEntry | None:
        """The row with ``key``, if any."""
        with Session(self._engine) as session:
            return find_outbox(session, key)

    def backlog(self, now: datetime) -> dict[str, int]:
        """Rows by status, those due now, and those parked."""
        with Session(self._engine) as session:
            return outbox_backlog(session, now, PARK_FOR / 2)


class IntegrationsService(ServiceBase):
    """Runs the outbox dispatcher every ``integrations.poll_interval``.

    Health: healthy while every client's breaker is closed and the last poll worked;
    degraded when a breaker is open or half-open or the last poll failed. The checks carry each
    breaker's state and the outbox backlog.

    Args:
        settings: The settings (``integrations`` and ``storage.database_url``).
        engine: A database engine to use (tests); by default one from the settings.
    """

    name = "integrations"
    depends_on = ("storage",)
    required = False

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self._settings = settings
        self._owns_engine = engine is None
        self._engine = engine or create_db_engine(settings.storage.resolved_database_url)
        self.store = SqlOutboxStore(self._engine)
        self.clients = Clients()
        self.dispatcher: Dispatcher | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._last_error = ""
        self.polls = 0
        self.rewriter: PromptRewriter | None = None
        self._own_calls: list[dict[str, Any]] = []  # the Anthropic client's telemetry events
        self._producer: TelemetryProducer | None = None
        self._fingerprint: tuple[int, datetime | None] = (0, None)

    async def _report_own_calls(self) -> None:
        """Send the telemetry of the optimizer's own LLM calls to the telemetry topic."""
        events, self._own_calls = self._own_calls, []
        if not events or not self._settings.kafka.bootstrap_servers:
            return  # no broker configured for this service: nothing to report to
        if self._producer is None:
            kafka = self._settings.kafka
            self._producer = TelemetryProducer(kafka.bootstrap_servers, kafka.telemetry_topic)
        records = [msgspec.json.encode(e) for e in events]
        await asyncio.to_thread(self._producer.send_all, records)

    async def start(self) -> None:
        """Build the configured clients and start the polling loop."""
        s = self._settings.integrations
        await self._build()
        self._stop = asyncio.Event()
        if s.enabled:
            self._task = asyncio.create_task(self._loop(), name="integrations-dispatcher")
        _log.info("integrations.started", targets=sorted(self.clients.targets), enabled=s.enabled)

    async def _build(self) -> None:
        """Clients, rewriter and dispatcher from the settings plus the API's connections."""
        s = self._settings.integrations
        try:
            self._fingerprint = await asyncio.to_thread(connections_fingerprint, self._engine)
            made = await asyncio.to_thread(load_connections, self._engine)
        except Exception as exc:  # the database may be down: the settings alone still work
            _log.warning("integrations.connections_unreadable", error=type(exc).__name__)
            made = []
        effective = with_connections(s, made)
        self.clients = build_clients(effective, on_telemetry=self._own_calls.append)
        self.rewriter = None
        if self.clients.anthropic is not None:
            self.rewriter = PromptRewriter(
                self._engine, self.clients.anthropic, self._settings.canary
            )
        self.dispatcher = Dispatcher(
            self.store,
            Router(s.routes, self.clients.targets),
            notifiers=self.clients.notifiers,
            trackers=self.clients.trackers,
            link_base=s.link_base_url,
            config_files=self.clients.config_files,
            retry_interval=s.outbox_retry_interval,
            max_retry_interval=s.outbox_max_retry_interval,
            max_attempts=s.max_attempts,
        )

    async def _follow_connections(self) -> None:
        """Rebuild the clients when a connection changed through the API."""
        now = await asyncio.to_thread(connections_fingerprint, self._engine)
        if now != self._fingerprint:
            await self.clients.close()
            await self._build()
            _log.info("integrations.connections_changed", targets=sorted(self.clients.targets))

    async def _loop(self) -> None:
        s = self._settings.integrations
        while not self._stop.is_set():
            try:
                await self._follow_connections()
                assert self.dispatcher is not None
                report = await self.dispatcher.run_once(s.batch_size)
                if self.rewriter is not None:
                    await self.rewriter.run_once()
                await self._report_own_calls()
                self._last_error = ""
                if report.delivered or report.failed or report.parked:
                    _log.info("integrations.polled", **dataclasses.asdict(report))
            except Exception as exc:  # the database may be down: keep polling
                self._last_error = type(exc).__name__
                _log.warning("integrations.poll_failed", error=self._last_error)
            self.polls += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), s.poll_interval.total_seconds())

    async def stop(self) -> None:
        """Finish the current row, stop polling, close the clients."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(task, timeout=30.0)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.clients.close()
        if self._owns_engine:
            self._engine.dispose()

    async def reload(self, settings: Settings) -> None:
        """New ``integrations`` settings (clients, routes, intervals): restart the dispatcher."""
        old, self._settings = self._settings, settings
        if old.integrations != settings.integrations and self.dispatcher is not None:
            await self.stop()
            await self.start()

    async def health_check(self) -> HealthResult:
        """Breaker states and the outbox backlog."""
        if not self._settings.integrations.enabled:
            return HealthResult(HealthStatus.HEALTHY, "disabled")
        if self._task is None or self._task.done():
            return HealthResult(HealthStatus.UNHEALTHY, "dispatcher not running")
        checks = {f"breaker.{n}": b.state.value for n, b in self.clients.breakers().items()}
        try:
            backlog = await asyncio.to_thread(self.store.backlog, datetime.now(UTC))
            checks.update({f"outbox.{k}": str(v) for k, v in backlog.items()})
        except Exception as exc:
            checks["outbox"] = type(exc).__name__
        open_ = sorted(n for n, b in self.clients.breakers().items() if b.state.value != "closed")
        if open_:
            return HealthResult(HealthStatus.DEGRADED, "breaker open: " + ", ".join(open_), checks)
        if self._last_error or "outbox" in checks:
            detail = self._last_error or checks["outbox"]
            return HealthResult(HealthStatus.DEGRADED, f"outbox poll failed: {detail}", checks)
        return HealthResult(HealthStatus.HEALTHY, "", checks)
