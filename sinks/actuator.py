"""The actuator sink: proposals become canaries, periods become verdicts, in one transaction.

Each item is one closed period of one app (:class:`PeriodWork`): the strategies' proposals and
each task's windows. For each task with an open deployment
the canary controller records the period and acts on the judge's verdict; then the coordinator
picks at most one proposal per task (one change in flight, cooldown, confidence, safety
limits), which starts as a canary or, when ``decisions.require_approval`` names its strategy or
app, waits as ``proposed`` with an ``approval_needed`` outbox event. A prompt decision that asks
for a rewritten template also waits as ``proposed`` until the integrations service has the
rewrite (``rollout.prompt_rewrite``). Everything of one period commits together; the configs that
changed are published after the commit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from core.app_config import AppConfig
from core.decisions import Decision
from core.insights import WindowGroup
from core.settings import Settings
from core.stats import WindowStats
from operators.strategies import REWRITE_KEY
from operators.strategies.coordinator import coordinate
from rollout.canary_controller import config_overrides, start_canary
from rollout.config_manager import config_channel, encode_config
from rollout.prompt_rewrite import current_template, mark_pending
from rollout.stages import observe
from sinks.database import StoreSink
from storage.configs import active_config
from storage.database import session_scope
from storage.decisions import last_decision_at, list_decisions, list_deployments, save_decision
from storage.outbox import enqueue

__all__ = ["Actuator", "PeriodWork", "actuator_sink", "redis_publisher"]

_log = logging.getLogger(__name__)
_OPEN = ["running", "paused", "watching"]
_OPEN_REFRESH_S = 5.0  # how stale the actuator's view of open deployments may get


class PeriodWork(msgspec.Struct, frozen=True, kw_only=True):
    """One closed period of one app, for the actuator."""

    app: str
    window_start: datetime
    window_end: datetime
    proposals: list[Decision]
    windows: dict[str, list[WindowStats]]

    @classmethod
    def of(cls, group: WindowGroup, proposals: list[Decision]) -> PeriodWork:
        """The work of one analyzed period: its proposals and each task's windows."""
        return cls(
            app=group.app,
            window_start=group.window_start,
            window_end=group.window_end,
            proposals=proposals,
            windows=group.tasks(),
        )


def _cache_forbidden(session: Session, decision: Decision, excluded: tuple[str, ...]) -> str:
    """The excluded params (multi-turn, tools) the task's config sets, for a cache decision.

    Windows carry no call attributes, so the dataflow's cache proposals are checked here.
    """
    if decision.strategy != "caching":
        return ""
    current = active_config(session, decision.app)
    task = current.tasks.get(decision.task) if current is not None else None
    params = task.params if task is not None else {}
    return ", ".join(p for p in excluded if params.get(p))


def _action_key(action: dict[str, object]) -> bytes:
    """What a change is, whatever else its proposal carried (requests, key order)."""
    return msgspec.json.encode(config_overrides(action), order="sorted")


class Actuator:
    """Applies periods to the database (and publishes configs that changed)."""

    def __init__(
        self, engine: Engine, settings: Settings, publish: Callable[[AppConfig], None] | None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._publish = publish
        self._open_apps: set[str] = set()
        self._open_read_at = float("-inf")

    def _may_have_open(self, app: str) -> bool:
        """Whether ``app`` may have an open deployment.

        Re-read every few seconds: people start canaries through the API too.
        """
        now = time.monotonic()
        if now - self._open_read_at > _OPEN_REFRESH_S:
            with session_scope(self._engine) as session:
                rows, _ = list_deployments(session, status=_OPEN, limit=100_000)
            self._open_apps = {d.app for d in rows}
            self._open_read_at = now
        return app in self._open_apps

    def apply_all(self, items: Iterable[PeriodWork]) -> int:
        """Apply each period; returns how many."""
        count = 0
        for work in items:
            self.apply(work)
            count += 1
        return count

    def apply(self, work: PeriodWork) -> list[Decision]:
        """Apply one period; returns the decisions it started or queued for approval."""
        if not work.proposals and not self._may_have_open(work.app):
            return []
        with session_scope(self._engine) as session:
            before = active_config(session, work.app)
            self._observe(session, work)
            chosen = self._decide(session, work)
            after = active_config(session, work.app)
        if chosen:
            self._open_apps.add(work.app)
        changed = after is not None and (before is None or after.version != before.version)
        if changed and after is not None and self._publish is not None:
            self._publish(after.as_config())
        return chosen

    def _observe(self, session: Session, work: PeriodWork) -> None:
        deployments, _ = list_deployments(session, app=work.app, status=_OPEN, limit=1000)
        observe(
            session,
            deployments,
            window_start=work.window_start,
            window_end=work.window_end,
            windows=work.windows,
            settings=self._settings.canary,
            tolerance=self._settings.decisions.quality_tolerance,
        )

    def _wants_rewrite(self, session: Session, decision: Decision) -> bool:
        """A prompt rewrite is asked for, can be had (Anthropic key) and has a template."""
        return (
            REWRITE_KEY in decision.action
            and bool(self._settings.integrations.anthropic.api_key)
            and bool(current_template(session, decision))
        )

    def _not_rolled_back(
        self, session: Session, work: PeriodWork, task: str, proposals: list[Decision]
    ) -> list[Decision]:
        """Drop proposals of a change rolled back for this task within the memory."""
        since = work.window_end - self._settings.decisions.rolled_back_memory
        failed = list_decisions(
            session, app=work.app, task=task, status=["rolled_back"], since=since, limit=500
        ).items
        undone = {(d.strategy, _action_key(d.action)) for d in failed}
        kept = []
        for p in proposals:
            if (p.strategy, _action_key(p.action)) in undone:
                _log.info(
                    "proposal %s %s/%s not taken: the same change was rolled back "
                    "within decisions.rolled_back_memory",
                    p.strategy,
                    work.app,
                    task,
                )
            else:
                kept.append(p)
        return kept

    def _decide(self, session: Session, work: PeriodWork) -> list[Decision]:
        by_task: dict[str, list[Decision]] = {}
        for proposal in work.proposals:
            by_task.setdefault(proposal.task, []).append(proposal)
        if not by_task:
            return []
        open_tasks = {
            d.task for d in list_deployments(session, app=work.app, status=_OPEN, limit=1000)[0]
        }
        decided = self._settings.decisions
        approval = set(decided.require_approval)
        out: list[Decision] = []
        for task, proposals in sorted(by_task.items()):
            proposals = self._not_rolled_back(session, work, task, proposals)
            chosen, rejected = coordinate(
                proposals,
                in_flight=task in open_tasks,
                last_decision_at=last_decision_at(session, work.app, task),
                now=work.window_end,
                settings=decided,
            )
            for decision, reason in rejected:
                _log.info(
                    "proposal %s %s/%s not taken: %s", decision.strategy, work.app, task, reason
                )
            if chosen is None:
                continue
            unsafe = _cache_forbidden(session, chosen, decided.cache.exclude_params)
            if unsafe:
                _log.info("caching for %s/%s not taken: task params set %s", work.app, task, unsafe)
                continue
            if chosen.strategy in approval or work.app in approval:
                if save_decision(session, chosen, now=work.window_end):
                    enqueue(
                        session,
                        key=f"approval:{chosen.id}",
                        event_type="approval_needed",
                        app=work.app,
                        payload=msgspec.to_builtins(chosen),
                        now=work.window_end,
                    )
            elif self._wants_rewrite(session, chosen):
                save_decision(session, mark_pending(chosen), now=work.window_end)
            else:
                start_canary(session, chosen, settings=self._settings.canary, now=work.window_end)
            out.append(chosen)
        return out


def redis_publisher(redis_url: str) -> Callable[[AppConfig], None]:
    """Publish configs on Redis from the dataflow with a synchronous client.

    Failures are logged: watchers re-read the database, so a lost message is late, never lost.
    """
    import redis  # the in-process bus cannot cross processes: without Redis, watchers poll

    client = redis.Redis.from_url(redis_url, socket_timeout=2.0)

    def publish(config: AppConfig) -> None:
        try:
            client.publish(config_channel(config.app), encode_config(config))
        except redis.RedisError as exc:
            _log.warning("could not publish config of %s: %s", config.app, exc)

    return publish


def actuator_sink(database_url: str, settings: Settings) -> StoreSink[PeriodWork]:
    """The dataflow's actuator: one :class:`Actuator` per worker."""
    url = settings.storage.redis_url
    return StoreSink(
        database_url,
        lambda engine: Actuator(engine, settings, redis_publisher(url) if url else None).apply_all,
    )
