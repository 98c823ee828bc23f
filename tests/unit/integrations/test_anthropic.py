"""AnthropicClient against a local server that answers like the Messages API."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import pytest
from structlog.testing import capture_logs

from core.errors import ConfigurationError
from core.events import LlmCall, decode_event
from integrations import (
    AnthropicClient,
    BreakerState,
    CircuitBreaker,
    IntegrationError,
    PromptConstraints,
    PromptProposal,
)

from .fakes import (
    ANTHROPIC_KEY,
    FakeAnthropic,
    FakeClock,
    RecordingSleep,
    Reply,
    anthropic_error,
    options,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
PROMPT = (
    "You are a very helpful assistant. Please, if you can, kindly classify the following "
    "support ticket {ticket} into exactly one of: bug, billing, other. Reply with the label."
)
CONSTRAINTS = PromptConstraints(
    app="support-bot", task="classify", keep=("{ticket}",), max_tokens=40
)


class Harness:
    def __init__(self, server: FakeAnthropic, **kwargs: Any) -> None:
        self.server = server
        self.sleep = RecordingSleep()
        self.events: list[dict[str, Any]] = []
        self.clock = FakeClock()
        self.kwargs = kwargs

    def propose(
        self, key: str = ANTHROPIC_KEY, times: int = 1
    ) -> list[PromptProposal | IntegrationError]:
        async def go() -> list[PromptProposal | IntegrationError]:
            client = AnthropicClient(
                key,
                model="claude-haiku-4-5",
                base_url=self.server.base_url,
                on_telemetry=self.events.append,
                options=options(self.sleep, now=lambda: NOW, monotonic=self._tick, **self.kwargs),
            )
            out: list[PromptProposal | IntegrationError] = []
            try:
                for _ in range(times):
                    try:
                        out.append(await client.propose_shorter_prompt(PROMPT, CONSTRAINTS))
                    except IntegrationError as exc:
                        out.append(exc)
            finally:
                await client.close()
            return out

        return asyncio.run(go())

    def _tick(self) -> float:
        self.clock.advance(0.25)  # each reading moves 250 ms: one call reads twice
        return self.clock()


def test_proposes_and_reports_its_own_call_as_telemetry(anthropic_server: FakeAnthropic) -> None:
    h = Harness(anthropic_server)
    [proposal] = h.propose()
    assert isinstance(proposal, PromptProposal)
    assert proposal.text == anthropic_server.answer
    assert proposal.missing == ()
    assert proposal.model == "claude-haiku-4-5"
    assert proposal.stop_reason == "end_turn"
    [request] = anthropic_server.requests
    assert request.route == "/v1/messages"
    assert request.headers["anthropic-version"] == "2023-06-01"
    body = request.json()
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 1024
    [message] = body["messages"]
    assert message["role"] == "user"
    assert message["content"] == (
        f"<prompt>\n{PROMPT}\n</prompt>\n\nKeep these strings verbatim: '{{ticket}}'"
        "\n\nAim for at most 40 tokens."
    )
    prompt_chars = len(body["system"]) + len(message["content"])
    [event] = h.events
    assert event == proposal.telemetry
    assert event == {
        "kind": "llm_call",
        "event_id": event["event_id"],
        "timestamp": "2026-11-29T12:00:00Z",
        "app": "llm-auto-optimizer",
        "task": "prompt_rewrite",
        "operation": "chat",
        "provider": "anthropic",
        "model": "claude-haiku-4-5",
        "latency_ms": 250.0,
        "input_tokens": prompt_chars // 4,
        "output_tokens": len(anthropic_server.answer) // 4,
        "cache_read_tokens": 0,
        "finish_reason": "end_turn",
        "request_id": "req_018EeWyXxfu5pfWkrYcMdjWG",
        "status": "ok",
        "attributes": {"target_app": "support-bot", "target_task": "classify"},
    }
    assert (proposal.input_tokens, proposal.output_tokens) == (
        event["input_tokens"],
        event["output_tokens"],
    )
    decoded = decode_event(json.dumps(event).encode())  # the optimizer's own decoder
    assert isinstance(decoded, LlmCall)
    assert (decoded.app, decoded.task, decoded.model) == (
        "llm-auto-optimizer",
        "prompt_rewrite",
        "claude-haiku-4-5",
    )


def test_a_proposal_that_loses_a_placeholder_says_so(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.answer = "Classify the ticket: bug, billing or other."
    [proposal] = Harness(anthropic_server).propose()
    assert isinstance(proposal, PromptProposal)
    assert proposal.missing == ("{ticket}",)


def test_429_honours_retry_after_and_529_is_retried(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.script(
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
            {"retry-after": "3"},
        ),
        anthropic_error(529, "overloaded_error", "Overloaded"),
    )
    h = Harness(anthropic_server)
    [proposal] = h.propose()
    assert isinstance(proposal, PromptProposal)
    assert h.sleep.delays == [3.0, 0.5]
    assert len(anthropic_server.requests) == 3
    assert [e["status"] for e in h.events] == ["ok"]


def test_5xx_retried_then_success(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.script(anthropic_error(500, "api_error", "Internal server error"))
    h = Harness(anthropic_server)
    assert isinstance(h.propose()[0], PromptProposal)
    assert h.sleep.delays == [0.25]


def test_400_error_body_is_surfaced_and_reported_as_failed_call(
    anthropic_server: FakeAnthropic,
) -> None:
    anthropic_server.script(
        anthropic_error(400, "invalid_request_error", "max_tokens: must be positive")
    )
    h = Harness(anthropic_server)
    [error] = h.propose()
    assert isinstance(error, IntegrationError)
    assert (error.status, error.attempts, error.transient) == (400, 1, False)
    assert error.reason == "invalid_request_error: max_tokens: must be positive"
    [event] = h.events
    assert (event["status"], event["error_type"], event["input_tokens"]) == (
        "error",
        "invalid_request_error",
        0,
    )


def test_overloaded_to_the_end_is_a_transient_error(anthropic_server: FakeAnthropic) -> None:
    anthropic_server.script(*[anthropic_error(529, "overloaded_error", "Overloaded")] * 2)
    h = Harness(anthropic_server, attempts=2)
    [error] = h.propose()
    assert isinstance(error, IntegrationError)
    assert (error.status, error.reason, error.transient) == (
        529,
        "overloaded_error: Overloaded",
        True,
    )
    assert h.events[0]["error_type"] == "overloaded"


def test_breaker_opens_and_half_opens(anthropic_server: FakeAnthropic) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("anthropic", failure_threshold=2, reset_timeout=5.0, clock=clock)
    anthropic_server.script(*[Reply(503, "upstream connect error")] * 2)
    h = Harness(anthropic_server, breaker=breaker, attempts=1)
    results = h.propose(times=3)
    assert [getattr(r, "reason", "ok") for r in results] == [
        "upstream connect error",
        "upstream connect error",
        "circuit_open",
    ]
    assert breaker.state is BreakerState.OPEN
    assert [e.get("error_type") for e in h.events] == [
        "server_error",
        "server_error",
        "circuit_open",
    ]
    clock.advance(5.0)
    assert isinstance(h.propose()[0], PromptProposal)
    assert breaker.state is BreakerState.CLOSED
    assert len(anthropic_server.requests) == 3


def test_key_stays_out_of_repr_errors_and_logs(
    anthropic_server: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    anthropic_server.script(
        anthropic_error(401, "authentication_error", f"invalid x-api-key {ANTHROPIC_KEY}")
    )
    h = Harness(anthropic_server)
    with capture_logs() as logs:
        [error] = h.propose()
    client = AnthropicClient(ANTHROPIC_KEY, base_url=anthropic_server.base_url)
    text = f"{error} {error!r} {client!r} {h.events!r} {logs!r} {caplog.text}"
    asyncio.run(client.close())
    assert "invalid x-api-key ***" in text
    assert ANTHROPIC_KEY not in text


def test_off_without_a_key() -> None:
    with pytest.raises(ConfigurationError, match="off"):
        AnthropicClient("")


def test_a_failing_telemetry_callback_does_not_fail_the_call(
    anthropic_server: FakeAnthropic,
) -> None:
    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    async def go() -> PromptProposal:
        client = AnthropicClient(
            ANTHROPIC_KEY, base_url=anthropic_server.base_url, on_telemetry=broken
        )
        try:
            return await client.propose_shorter_prompt(PROMPT)
        finally:
            await client.close()

    with capture_logs() as logs:
        proposal = asyncio.run(go())
    assert proposal.text == anthropic_server.answer
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "anthropic.telemetry_failed"
    ]
