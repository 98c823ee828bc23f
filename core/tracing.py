"""Trace context every layer shares: spans around calls, W3C context in and out of headers.

The tracer provider (and the OTLP exporter) is installed once by the entry point
(``orchestrator.observability.configure_tracing``); until then every span here is a no-op, so
the library code can always call these helpers. ``api`` opens a server span per REST request
and gRPC call (:func:`server_span`, continuing the caller's ``traceparent``); the service layer
and storage open child spans (:func:`traced`); the collector puts the current context into the
Kafka headers of what it produces (:func:`kafka_trace_headers`), so one trace follows an event
from the request that brought it to the records the processor reads.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, cast

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

__all__ = [
    "TRACER_NAME",
    "current_trace_id",
    "headers_carrier",
    "kafka_trace_headers",
    "mark_error",
    "server_span",
    "span",
    "traced",
]

TRACER_NAME = "llmopt"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _tracer() -> trace.Tracer:
    # Looked up per call: the provider is installed after import time (by the entry point).
    return trace.get_tracer(TRACER_NAME)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int | float | bool] | None = None,
    carrier: Mapping[str, str] | None = None,
) -> Iterator[Span]:
    """A span made current for the block; an exception marks it as an error and propagates.

    Args:
        name: The span name.
        kind: Server for an incoming request, client for an outgoing call, internal otherwise.
        attributes: Span attributes.
        carrier: W3C headers (``traceparent``) to continue a caller's trace instead of the
            current context.
    """
    context = propagate.extract(carrier) if carrier is not None else None
    with _tracer().start_as_current_span(
        name,
        context=context,
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=True,
        set_status_on_exception=True,
    ) as current:
        yield current


@contextmanager
def server_span(
    name: str, carrier: Mapping[str, str], **attributes: str | int | float | bool
) -> Iterator[Span]:
    """A server span for one incoming request, continuing the caller's ``traceparent``."""
    with span(name, kind=SpanKind.SERVER, attributes=attributes, carrier=carrier) as current:
        yield current


def headers_carrier(headers: Iterable[tuple[bytes | str, bytes | str]]) -> dict[str, str]:
    """The ``traceparent``/``tracestate`` of ASGI headers or gRPC metadata, as a carrier."""
    out: dict[str, str] = {}
    for key, value in headers:
        name = key.decode("latin-1") if isinstance(key, bytes) else key
        if name.lower() in ("traceparent", "tracestate"):
            out[name.lower()] = value.decode("latin-1") if isinstance(value, bytes) else value
    return out


def traced(
    name: str | None = None, **attributes: str | int | float | bool
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function or coroutine function to run inside a span of its own.

    Args:
        name: The span name; the function's qualified name by default.
        attributes: Constant span attributes (e.g. ``{"db.system": "postgresql"}``).
    """

    def decorate(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        label = name or fn.__qualname__
        if inspect.iscoroutinefunction(fn):
            coro = cast(Callable[_P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def run_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with span(label, attributes=attributes):
                    return await coro(*args, **kwargs)

            return cast(Callable[_P, _R], run_async)

        @functools.wraps(fn)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with span(label, attributes=attributes):
                return fn(*args, **kwargs)

        return run

    return decorate


def kafka_trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (W3C ``traceparent``/``tracestate``).

    Empty outside a recording span (no tracer provider installed, or no span open).
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def current_trace_id() -> str:
    """The current span's trace id (32 hex digits), or an empty string outside a span."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def mark_error(current: Span, message: str) -> None:
    """Set an error status on ``current`` without an exception (e.g. an HTTP 5xx answer)."""
    current.set_status(Status(StatusCode.ERROR, message))
