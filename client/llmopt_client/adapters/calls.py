"""What every adapter does around a chat call: prepare it from the route, measure, report.

The responses of the OpenAI SDK and of LiteLLM share one shape (``usage.prompt_tokens``,
``choices[0].finish_reason``; stream chunks with ``choices[0].delta`` and a final ``usage``),
so one :class:`CallMeter` serves both.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from llmopt_client.cache import cache_key
from llmopt_client.client import LlmoptClient
from llmopt_client.routing import Route

__all__ = ["CallMeter", "error_type", "prepare", "request_cache_key", "usage_of"]

_ERRORS = {
    "RateLimitError": "rate_limited",
    "APITimeoutError": "timeout",
    "Timeout": "timeout",
    "APIConnectionError": "connection",
    "AuthenticationError": "auth",
    "PermissionDeniedError": "auth",
    "BadRequestError": "bad_request",
    "ContextWindowExceededError": "context_length",
    "ContentPolicyViolationError": "content_filter",
    "InternalServerError": "server_error",
    "ServiceUnavailableError": "server_error",
}


def error_type(exc: BaseException) -> str:
    """The ``error_type`` of a failed call (``rate_limited``, ``timeout``... or the class)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in _ERRORS:
            return _ERRORS[cls.__name__]
    status = getattr(exc, "status_code", None)
    return f"http_{status}" if isinstance(status, int) else type(exc).__name__


def prompt_cache_flags(llmopt: LlmoptClient, route: Route, provider: str) -> dict[str, Any]:
    """Request options that turn on provider prompt caching when the route's config asks."""
    prompt = route.config.prompt
    if prompt is None or not prompt.prompt_cache:
        return {}
    if provider == "anthropic":  # LiteLLM marks the system message cacheable
        return {"cache_control_injection_points": [{"location": "message", "role": "system"}]}
    return {"prompt_cache_key": f"{llmopt.app}:{route.task}"}  # OpenAI routes by this key


def prepare(
    llmopt: LlmoptClient, route: Route, kwargs: dict[str, Any], provider: str
) -> dict[str, Any]:
    """The call's keyword arguments with the route applied (model, params, prompt caching).

    The config's params replace the caller's; the caller's ``model`` stays when the config
    names none.
    """
    out = dict(kwargs)
    if route.model:
        out["model"] = route.model
    out.update(route.params)
    for key, value in prompt_cache_flags(llmopt, route, provider).items():
        out.setdefault(key, value)
    if out.get("stream") and provider != "anthropic":
        options = dict(out.get("stream_options") or {})
        options.setdefault("include_usage", True)  # the last chunk then carries the usage
        out["stream_options"] = options
    return out


def request_cache_key(route: Route, request: Mapping[str, Any]) -> str | None:
    """The response-cache key of a non-streamed request, or None when the cache is off."""
    cache = route.config.cache
    if cache is None or not cache.enabled or request.get("stream"):
        return None
    messages = request.get("messages") or []
    system = next(
        (m.get("content") for m in messages if isinstance(m, dict) and m.get("role") == "system"),
        None,
    )
    params = {k: v for k, v in request.items() if k not in ("model", "messages", "user")}
    fields = {
        "model": request.get("model"),
        "params": params,
        "system_prompt": system,
        "prompt": messages,
        "tenant": request.get("user"),
    }
    return cache_key(route.task, fields, cache.key_fields)


def usage_of(response: Any) -> tuple[int, int, int | None]:
    """Input, output and cache-read tokens of a response or final chunk (zeros if absent)."""
    usage = getattr(response, "usage", None)
    if usage is None:
        return 0, 0, None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    return (
        int(getattr(usage, "prompt_tokens", 0) or 0),
        int(getattr(usage, "completion_tokens", 0) or 0),
        int(cached) if cached else None,
    )


class CallMeter:
    """Times one call and reports it once (success, failure, or a stream's end)."""

    def __init__(self, llmopt: LlmoptClient, route: Route, model: str, provider: str) -> None:
        self.llmopt = llmopt
        self.route = route
        self.model = model
        self.provider = provider
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.ttft_ms: float | None = None
        self._reported = False

    def elapsed_ms(self) -> float:
        """Milliseconds since the call started."""
        return (time.perf_counter() - self._t0) * 1000.0

    def first_chunk(self) -> None:
        """Note the time to first chunk (once)."""
        if self.ttft_ms is None:
            self.ttft_ms = self.elapsed_ms()

    def ok(self, response: Any, *, cost_usd: float | None = None, **attributes: Any) -> None:
        """Report a successful call from its response (or a stream's last chunk)."""
        tokens_in, tokens_out, cached = usage_of(response)
        choices = getattr(response, "choices", None) or []
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        self._report(
            status="ok",
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cache_read_tokens=cached,
            finish_reason=finish,
            cost_usd=cost_usd,
            attributes=attributes,
        )

    def cache_hit(self) -> None:
        """Report a call answered from the response cache (no tokens, no cost)."""
        self._report(status="ok", cost_usd=0.0, attributes={"cache_hit": True})

    def failed(self, exc: BaseException) -> None:
        """Report a failed call."""
        self._report(status="error", error_type=error_type(exc))

    def _report(self, **fields: Any) -> None:
        if self._reported:
            return
        self._reported = True
        self.llmopt.record(
            self.route,
            model=self.model,
            provider=self.provider,
            started_at=self.started_at,
            latency_ms=self.elapsed_ms(),
            ttft_ms=self.ttft_ms,
            **{k: v for k, v in fields.items() if k != "attributes" or v},
        )


class MeteredStream:
    """A sync stream of chunks that reports the call when it ends (usage from the last)."""

    def __init__(self, stream: Any, meter: CallMeter) -> None:
        self._stream = stream
        self._meter = meter

    def __iter__(self) -> Iterator[Any]:
        last: Any = None
        try:
            for chunk in self._stream:
                self._meter.first_chunk()
                last = chunk if getattr(chunk, "usage", None) is not None else last
                yield chunk
        except Exception as exc:
            self._meter.failed(exc)
            raise
        self._meter.ok(last)

    def __enter__(self) -> MeteredStream:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class AsyncMeteredStream:
    """The async twin of :class:`MeteredStream`."""

    def __init__(self, stream: Any, meter: CallMeter) -> None:
        self._stream = stream
        self._meter = meter

    async def __aiter__(self) -> AsyncIterator[Any]:
        last: Any = None
        try:
            async for chunk in self._stream:
                self._meter.first_chunk()
                last = chunk if getattr(chunk, "usage", None) is not None else last
                yield chunk
        except Exception as exc:
            self._meter.failed(exc)
            raise
        self._meter.ok(last)

    async def __aenter__(self) -> AsyncMeteredStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            await close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
