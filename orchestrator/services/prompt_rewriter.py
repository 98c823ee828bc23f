"""Fills in pending prompt rewrites with the Anthropic client, then starts their canaries.

Part of the integrations service (the dataflow never calls outside services): every poll it
takes the proposed prompt decisions whose rewrite is pending (``rollout.prompt_rewrite``), asks
Claude for a shorter template that keeps every ``{placeholder}``, and starts the decision as a
canary with it. A rewrite that drops a placeholder, or a call that fails permanently or keeps
failing, starts the rest of the decision without one and records why. The client's own calls
are reported as telemetry through ``on_telemetry``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from sqlalchemy import Engine

from core.decisions import Decision
from core.settings import CanarySettings
from integrations.anthropic import AnthropicClient, PromptConstraints
from integrations.errors import IntegrationError
from rollout.prompt_rewrite import (
    apply_rewrite,
    current_template,
    pending_rewrites,
    placeholders,
    skip_rewrite,
)
from storage.database import session_scope

__all__ = ["PromptRewriter"]

_log = structlog.get_logger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PromptRewriter:
    """One pass over the pending rewrites per :meth:`run_once`."""

    def __init__(
        self,
        engine: Engine,
        client: AnthropicClient,
        canary: CanarySettings,
        *,
        max_attempts: int = 5,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._engine = engine
        self._client = client
        self._canary = canary
        self._max_attempts = max_attempts
        self._now = now
        self._attempts: dict[str, int] = {}

    def _pending(self) -> list[tuple[Decision, str | None]]:
        with session_scope(self._engine) as session:
            return [(d, current_template(session, d)) for d in pending_rewrites(session)]

    def _skip(self, decision: Decision, reason: str) -> None:
        with session_scope(self._engine) as session:
            skip_rewrite(session, decision, reason=reason, settings=self._canary, now=self._now())
        _log.warning("prompt_rewrite.skipped", decision=decision.id, reason=reason)

    async def run_once(self) -> int:
        """Handle every pending rewrite once; returns how many were settled."""
        settled = 0
        for decision, template in await asyncio.to_thread(self._pending):
            if not template:
                await asyncio.to_thread(self._skip, decision, "the task has no template")
                settled += 1
                continue
            keep = placeholders(template)
            try:
                proposal = await self._client.propose_shorter_prompt(
                    template,
                    PromptConstraints(app=decision.app, task=decision.task, keep=keep),
                )
            except IntegrationError as exc:
                tries = self._attempts.get(decision.id, 0) + 1
                self._attempts[decision.id] = tries
                if exc.transient and tries < self._max_attempts:
                    _log.info("prompt_rewrite.retry", decision=decision.id, attempt=tries)
                    continue
                await asyncio.to_thread(
                    self._skip, decision, f"rewrite failed after {tries} attempt(s): {exc}"
                )
                settled += 1
                continue
            if proposal.missing:
                lost = ", ".join(proposal.missing)
                await asyncio.to_thread(self._skip, decision, f"the rewrite lost {lost}")
            else:
                cost = {
                    "model": proposal.model,
                    "input_tokens": proposal.input_tokens,
                    "output_tokens": proposal.output_tokens,
                }
                await asyncio.to_thread(self._apply, decision, template, proposal.text, cost)
            self._attempts.pop(decision.id, None)
            settled += 1
        return settled

    def _apply(self, decision: Decision, template: str, text: str, cost: dict[str, object]) -> None:
        with session_scope(self._engine) as session:
            apply_rewrite(
                session,
                decision,
                template=template,
                rewritten=text,
                cost=cost,
                settings=self._canary,
                now=self._now(),
            )
        _log.info("prompt_rewrite.started", decision=decision.id, chars=len(text))
