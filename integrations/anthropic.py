"""Anthropic Messages API client: proposes a shorter prompt, and reports its own call as telemetry.

``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version: 2023-06-01``. Errors come as
``{"type": "error", "error": {"type": "rate_limit_error", "message": ...}}``; 429 (with
``retry-after``), 529 ``overloaded_error`` and other 5xx are retried. Every call, failed or not, is
handed to the caller's ``on_telemetry`` callback as a telemetry event (CONTRACT.md §2) of the app
``llm-auto-optimizer``, task ``prompt_rewrite``, so the optimizer's own spend is measured too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import structlog

from core.errors import ConfigurationError
from integrations.circuit_breaker import CircuitBreaker
from integrations.errors import IntegrationError
from integrations.redaction import Secret
from integrations.transport import ApiTransport, ClientOptions

__all__ = [
    "ANTHROPIC_VERSION",
    "SELF_APP",
    "AnthropicClient",
    "PromptConstraints",
    "PromptProposal",
    "anthropic_error",
]

_log = structlog.get_logger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
SELF_APP = "llm-auto-optimizer"
_TASK = "prompt_rewrite"
_SYSTEM = (
    "You shorten prompts of LLM applications. Rewrite the prompt the user gives you inside "
    "<prompt> tags so that it asks for the same output with as few tokens as possible: keep "
    "every instruction, constraint, output format and placeholder exactly; drop repetition, "
    "filler and politeness. Answer with the rewritten prompt only: no preamble, no tags."
)

Telemetry = Callable[[dict[str, Any]], object]


class PromptConstraints(msgspec.Struct, frozen=True, kw_only=True):
    """What a shorter prompt must respect.

    Attributes:
        app: The application the prompt belongs to (recorded with the telemetry).
        task: Its task.
        keep: Strings that must stay verbatim (placeholders such as ``{ticket}``).
        max_tokens: A target length for the rewrite, in tokens, if any.
        notes: More instructions for the rewrite.
    """

    app: str = ""
    task: str = ""
    keep: tuple[str, ...] = ()
    max_tokens: int | None = None
    notes: str = ""


class PromptProposal(msgspec.Struct, frozen=True, kw_only=True):
    """A shorter prompt the model proposed, and what proposing it cost.

    Attributes:
        text: The proposed prompt.
        model: The model that answered.
        input_tokens: Tokens billed for the request.
        output_tokens: Tokens billed for the answer.
        stop_reason: Why the model stopped (``end_turn``; ``max_tokens`` means it was cut).
        missing: The ``keep`` strings the proposal lost (a strategy should reject it then).
        telemetry: The telemetry event of this call (also given to ``on_telemetry``).
    """

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None
    missing: tuple[str, ...]
    telemetry: dict[str, Any]


def anthropic_error(response: httpx.Response) -> str:
    """``"<error.type>: <error.message>"`` from an Anthropic error body, or its first line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return f"{error.get('type', 'error')}: {error.get('message', '')}".rstrip(": ")
    lines = response.text.strip().splitlines()
    return lines[0].strip() if lines else ""


def _error_type(exc: IntegrationError) -> str:
    status = exc.status
    if exc.reason == "circuit_open":
        return "circuit_open"
    if status is None:
        return "timeout" if "Timeout" in exc.reason else "connection"
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500:
        return "server_error"
    return exc.reason.split(":", 1)[0] or f"http_{status}"


class AnthropicClient:
    """Asks Claude for a shorter version of a prompt.

    Args:
        api_key: The API key (a secret).
        model: The model to ask.
        base_url: The API root.
        max_tokens: The answer's token limit.
        on_telemetry: Called with the telemetry event of each call (CONTRACT.md §2).
        options: Shared client, timeout, retries, breaker and clocks.

    Raises:
        ConfigurationError: No key, or a bad base URL. Without a key the integration is off:
            build it only when one is configured (see :func:`integrations.factory.build_clients`).
    """

    name = "anthropic"

    def __init__(
        self,
        api_key: str | Secret,
        *,
        model: str = "claude-haiku-4-5",
        base_url: str = "https://api.anthropic.com",
        max_tokens: int = 1024,
        on_telemetry: Telemetry | None = None,
        options: ClientOptions | None = None,
    ) -> None:
        key = api_key.reveal() if isinstance(api_key, Secret) else api_key
        if not key:
            raise ConfigurationError("anthropic needs an API key (without one it is off)")
        if max_tokens < 1:
            raise ConfigurationError("anthropic max_tokens must be at least 1")
        self.model = model
        self._max_tokens = max_tokens
        self._on_telemetry = on_telemetry
        self._http = ApiTransport(
            "anthropic",
            base_url,
            headers={
                "x-api-key": Secret(key),
                "anthropic-version": ANTHROPIC_VERSION,
                "content-type": "application/json",
            },
            secrets=(key,),
            error_reader=anthropic_error,
            options=options,
        )

    def __repr__(self) -> str:
        return f"AnthropicClient(base_url={self._http.base_url!r}, model={self.model!r})"

    @property
    def breaker(self) -> CircuitBreaker:
        """The client's circuit breaker."""
        return self._http.breaker

    def _request_body(self, prompt: str, c: PromptConstraints) -> dict[str, Any]:
        lines = [f"<prompt>\n{prompt}\n</prompt>"]
        if c.keep:
            lines.append("Keep these strings verbatim: " + ", ".join(repr(k) for k in c.keep))
        if c.max_tokens is not None:
            lines.append(f"Aim for at most {c.max_tokens} tokens.")
        if c.notes:
            lines.append(c.notes)
        return {
            "model": self.model,
            "max_tokens": self._max_tokens,
            "system": _SYSTEM,
            "messages": [{"role": "user", "content": "\n\n".join(lines)}],
        }

    async def propose_shorter_prompt(
        self, prompt: str, constraints: PromptConstraints | None = None
    ) -> PromptProposal:
        """Ask the model for a shorter prompt with the same effect.

        Args:
            prompt: The prompt (system prompt or template) to shorten.
            constraints: What the rewrite must keep, and for which app/task.

        Returns:
            The proposal, with its token usage and telemetry event.

        Raises:
            IntegrationError: The API refused or failed (the telemetry event is still emitted).
        """
        c = constraints if constraints is not None else PromptConstraints()
        started = self._http.monotonic()
        response: httpx.Response | None = None
        try:
            response = await self._http.request(
                "POST", "/v1/messages", json=self._request_body(prompt, c)
            )
            body = response.json()
            usage = body.get("usage") or {}
            text = "".join(
                str(block.get("text", ""))
                for block in body.get("content") or []
                if block.get("type") == "text"
            ).strip()
        except IntegrationError as exc:
            self._emit(self._event(c, started, status="error", error_type=_error_type(exc)))
            raise
        except (ValueError, AttributeError, TypeError):
            self._emit(self._event(c, started, status="error", error_type="invalid_response"))
            raise IntegrationError(
                "anthropic",
                "invalid_response",
                attempts=1,
                status=None if response is None else response.status_code,
            ) from None
        text = text.removeprefix("<prompt>").removesuffix("</prompt>").strip()
        event = self._event(
            c,
            started,
            model=str(body.get("model") or self.model),
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
            finish_reason=body.get("stop_reason"),
            request_id=response.headers.get("request-id"),
        )
        self._emit(event)
        return PromptProposal(
            text=text,
            model=event["model"],
            input_tokens=event["input_tokens"],
            output_tokens=event["output_tokens"],
            stop_reason=body.get("stop_reason"),
            missing=tuple(k for k in c.keep if k not in text),
            telemetry=event,
        )

    def _event(self, c: PromptConstraints, started: float, **extra: Any) -> dict[str, Any]:
        latency_ms = max(0.0, (self._http.monotonic() - started) * 1000.0)
        event: dict[str, Any] = {
            "kind": "llm_call",
            "event_id": str(uuid.uuid4()),
            "timestamp": self._http.now().isoformat().replace("+00:00", "Z"),
            "app": SELF_APP,
            "task": _TASK,
            "operation": "chat",
            "provider": "anthropic",
            "model": self.model,
            "latency_ms": round(latency_ms, 3),
            "input_tokens": 0,
            "output_tokens": 0,
            "status": "ok",
            "attributes": {"target_app": c.app, "target_task": c.task},
        }
        event.update({k: v for k, v in extra.items() if v is not None})
        return event

    def _emit(self, event: dict[str, Any]) -> None:
        if self._on_telemetry is None:
            return
        try:
            self._on_telemetry(event)
        except Exception as exc:  # a broken sink must not break the rewrite
            _log.warning("anthropic.telemetry_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Close the httpx client if the client opened it (idempotent)."""
        await self._http.close()
