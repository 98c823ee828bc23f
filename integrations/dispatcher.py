"""Delivers outbox rows to their routed targets: at least once, idempotent by key and target.

For each claimed row: build its :class:`~integrations.notifier.Notification`, route it, and
deliver it to every target the row's ``result["targets"]`` does not already record as done (so
a replay never re-sends a Slack message that went out). Notifiers (Slack) post the message;
trackers (Jira, GitHub) open an issue (idempotent by the key's label) for ``approval_needed``,
and comment on that issue for later events of the same decision (``decision`` - e.g. the canary
that its approval started -, ``decision_rejected``, ``verdict``, ``rollback``); the approval row
is found by key (``approval:<decision id>``, or ``approval_needed:<decision id>``). A
``decision`` or rejection without an approval issue is skipped; other events without one open an
issue of their own. The row is
marked delivered when every target is done; otherwise failed with each target's error and a
next attempt after exponential backoff (or the wait a service asked for). A permanent refusal
(a 4xx) or ``max_attempts`` parks the row (:data:`~integrations.outbox.PARK_FOR`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from core.app_config import CONFIG_CHANGED
from integrations.config_files import FILES_TARGET, ConfigFiles
from integrations.errors import IntegrationError
from integrations.messages import build_notification, decision_id, event_facts
from integrations.notifier import Notification, Notifier
from integrations.outbox import PARK_FOR, OutboxClaim, OutboxRecord, OutboxStore, outbox_key
from integrations.routing import Router
from integrations.tracker import IssueTracker

__all__ = ["DispatchReport", "Dispatcher", "TargetOutcome"]

_log = structlog.get_logger(__name__)
_FOLLOW_UPS = ("decision", "decision_approved", "decision_rejected")  # comment or nothing


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """How one target took one row: ``record`` goes into ``result["targets"][target]``."""

    ok: bool
    record: dict[str, Any]
    error: str | None = None
    transient: bool = True
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one :meth:`Dispatcher.run_once` did."""

    delivered: int = 0
    failed: int = 0
    parked: int = 0


class Dispatcher:
    """Takes due outbox rows and delivers them to Slack, Jira and GitHub.

    Args:
        store: The outbox.
        router: Which targets an event goes to.
        notifiers: Message targets by name (``{"slack": SlackWebhook}``).
        trackers: Issue trackers by name (``{"jira": JiraClient, "github": GitHubClient}``).
        link_base: Base URL of "open details" links.
        config_files: Where ``config_changed`` rows are written (GitOps files); without it
            those rows are marked delivered with nothing sent. Routes do not apply to them.
        retry_interval: Delay before the first redelivery; doubles per attempt (with jitter).
        max_retry_interval: Largest redelivery delay.
        max_attempts: Attempts after which a row is parked.
        now: Aware UTC clock.
        rng: Jitter source, floats in ``[0, 1)``.
    """

    def __init__(
        self,
        store: OutboxStore,
        router: Router,
        *,
        notifiers: Mapping[str, Notifier] | None = None,
        trackers: Mapping[str, IssueTracker] | None = None,
        link_base: str = "",
        config_files: ConfigFiles | None = None,
        retry_interval: timedelta = timedelta(seconds=30),
        max_retry_interval: timedelta = timedelta(hours=1),
        max_attempts: int = 10,
        now: Callable[[], datetime] = _utcnow,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.router = router
        self.notifiers = dict(notifiers or {})
        self.trackers = dict(trackers or {})
        self._link_base = link_base
        self.config_files = config_files
        self._retry = retry_interval
        self._max_retry = max_retry_interval
        self._max_attempts = max_attempts
        self._now = now
        self._rng = rng

    async def run_once(self, limit: int = 50) -> DispatchReport:
        """Deliver up to ``limit`` due rows, one claim (one transaction) at a time."""
        delivered = failed = parked = 0
        for _ in range(limit):
            claim = await asyncio.to_thread(self.store.claim, self._now())
            if claim is None:
                break
            try:
                outcome = await self.deliver(claim)
            except BaseException:
                await asyncio.to_thread(self.store.release, claim)
                raise
            delivered += outcome == "delivered"
            failed += outcome == "failed"
            parked += outcome == "parked"
        return DispatchReport(delivered, failed, parked)

    async def deliver(self, claim: OutboxClaim) -> str:
        """Deliver one claimed row and record the outcome.

        Returns:
            ``"delivered"``, ``"failed"`` (will be retried) or ``"parked"``.
        """
        entry = claim.entry
        note: Notification | None = None
        if entry.event_type == CONFIG_CHANGED:
            routed: tuple[str, ...] = (FILES_TARGET,) if self.config_files is not None else ()
        else:
            facts = event_facts(entry.event_type, entry.payload)
            note = build_notification(
                entry.event_type, entry.key, entry.payload, link_base=self._link_base
            )
            routed = self.router.targets(facts)
        done: dict[str, Any] = dict((entry.result or {}).get("targets") or {})
        errors: dict[str, TargetOutcome] = {}
        for target in routed:
            if (done.get(target) or {}).get("ok"):
                continue  # delivered before: never twice
            outcome = await self._to_target(target, entry, note)
            done[target] = outcome.record
            if not outcome.ok:
                errors[target] = outcome
        now = self._now()
        result: dict[str, Any] = {"targets": done, "routed": list(routed)}
        log = _log.bind(key=entry.key, event_type=entry.event_type)
        if not errors:
            await asyncio.to_thread(self.store.delivered, claim, now=now, result=result)
            log.info("outbox.delivered", targets=list(routed))
            return "delivered"
        error = "; ".join(f"{t}: {o.error}" for t, o in errors.items())
        attempts = entry.attempts + 1
        park = attempts >= self._max_attempts or not any(o.transient for o in errors.values())
        if park:
            next_at = now + PARK_FOR
            result["parked"] = True
        else:
            wait = max((o.retry_after or 0.0 for o in errors.values()), default=0.0)
            next_at = now + max(self._backoff(attempts), timedelta(seconds=wait))
        await asyncio.to_thread(
            self.store.failed, claim, error=error, next_attempt_at=next_at, result=result
        )
        log.warning("outbox.failed", error=error, attempts=attempts, parked=park)
        return "parked" if park else "failed"

    def _backoff(self, attempts: int) -> timedelta:
        ceiling: timedelta = min(self._max_retry, self._retry * 2 ** min(attempts - 1, 30))
        return ceiling * (0.5 + 0.5 * self._rng())

    async def _to_target(
        self, target: str, entry: OutboxRecord, note: Notification | None
    ) -> TargetOutcome:
        at = self._now().isoformat()
        if note is None:
            return await self._to_files(entry, at)
        notifier = self.notifiers.get(target)
        if notifier is not None:
            r = await notifier.send(note)
            if r.ok:
                return TargetOutcome(True, {"ok": True, "at": at, "status": r.status})
            transient = r.status is None or r.status == 429 or r.status >= 500
            return self._failure(r.error or f"HTTP {r.status}", r.status, transient, r.retry_after)
        tracker = self.trackers.get(target)
        if tracker is None:
            return self._failure("not configured", None, False, None)
        try:
            if entry.event_type != "approval_needed" and decision_id(
                entry.event_type, entry.payload
            ):
                commented = await self._comment(tracker, target, entry, note, at)
                if commented is not None:
                    return commented
            issue = await tracker.open_issue(note)
        except IntegrationError as exc:
            return self._failure(exc.reason, exc.status, exc.transient, exc.retry_after)
        return TargetOutcome(True, {"ok": True, "at": at, "issue": issue.key, "url": issue.url})

    async def _to_files(self, entry: OutboxRecord, at: str) -> TargetOutcome:
        """Commit a ``config_changed`` row's config (see :mod:`integrations.config_files`)."""
        if self.config_files is None:
            return self._failure("not configured", None, False, None)
        try:
            written = await self.config_files.write(entry.payload)
        except IntegrationError as exc:
            return self._failure(exc.reason, exc.status, exc.transient, exc.retry_after)
        if written is None:
            return TargetOutcome(True, {"ok": True, "at": at, "skipped": "repository as new"})
        record = {"ok": True, "at": at, "path": written.path, "commit": written.commit}
        return TargetOutcome(True, {**record, "url": written.url})

    async def _comment(
        self,
        tracker: IssueTracker,
        target: str,
        entry: OutboxRecord,
        note: Notification,
        at: str,
    ) -> TargetOutcome | None:
        """Comment on the decision's approval issue; ``None``: no issue, open one instead."""
        decided = decision_id(entry.event_type, entry.payload)
        opened = None
        for key in (f"approval:{decided}", outbox_key("approval_needed", decided)):
            opened = await asyncio.to_thread(self.store.find, key)
            if opened is not None:
                break
        record = ((opened.result or {}).get("targets") or {}).get(target) if opened else None
        if record and record.get("issue"):
            comment = await tracker.comment(str(record["issue"]), note)
            return TargetOutcome(
                True, {"ok": True, "at": at, "issue": record["issue"], "comment": comment}
            )
        pending = opened is not None and not (opened.result or {}).get("parked")
        if pending and opened and target in ((opened.result or {}).get("routed") or [target]):
            return self._failure("issue not opened yet", None, True, None)
        if entry.event_type not in _FOLLOW_UPS:
            return None
        return TargetOutcome(True, {"ok": True, "at": at, "skipped": "no issue for the decision"})

    @staticmethod
    def _failure(
        error: str, status: int | None, transient: bool, retry_after: float | None
    ) -> TargetOutcome:
        record = {"ok": False, "error": error, "status": status}
        return TargetOutcome(False, record, error, transient, retry_after)
