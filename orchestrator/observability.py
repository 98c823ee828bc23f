"""Logs and traces of the optimizer process: structlog (JSON or console) and OpenTelemetry.

Every log line carries the bound context (the REST request id is bound per request by
``api.rest.context``) and, inside a span, its ``trace_id`` and ``span_id``. Traces go to an
OTLP/HTTP endpoint when ``orchestrator.otlp_endpoint`` is set; without it spans are still
created (so trace ids appear in the logs and Kafka headers) but nothing is exported.

The spans themselves are opened by the layers below (:mod:`core.tracing`): a server span per
REST request and gRPC call, spans around service calls, and, installed here by
:func:`configure_tracing`, one client span per SQL statement of every SQLAlchemy engine in the
process (:func:`instrument_sql`), so a request's trace reaches the database.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext

from core.tracing import TRACER_NAME, kafka_trace_headers

__all__ = [
    "add_trace_context",
    "configure_logging",
    "configure_tracing",
    "instrument_sql",
    "kafka_trace_headers",
    "log_format_for",
    "set_log_level",
]

_log = structlog.get_logger(__name__)
_NOISY = ("httpx", "httpcore", "alembic.runtime.migration", "hypercorn.error")


def log_format_for(fmt: str, env: str) -> str:
    """Resolve ``orchestrator.log_format``: ``auto`` is JSON in production, console elsewhere."""
    if fmt == "auto":
        return "json" if env == "production" else "console"
    return fmt


def add_trace_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor adding the current span's ``trace_id`` and ``span_id``."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event.setdefault("span_id", format(ctx.span_id, "016x"))
    return event


def configure_logging(level: str, fmt: str = "console") -> None:
    """Structured logs to stderr at ``level``, one JSON object per line when ``fmt`` is json.

    Args:
        level: A standard level name (``DEBUG`` … ``CRITICAL``).
        fmt: ``json`` or ``console`` (see :func:`log_format_for`).
    """
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_context,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
    set_log_level(level)


def set_log_level(level: str) -> None:
    """Change the level of structlog and the standard library at runtime (SIGHUP reload)."""
    numeric = logging.getLevelName(level)
    logging.getLogger().setLevel(numeric)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    config = structlog.get_config()
    structlog.configure(
        processors=config["processors"],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )


def configure_tracing(endpoint: str, service_name: str = "llm-auto-optimizer") -> TracerProvider:
    """Install the global tracer provider; export over OTLP/HTTP when ``endpoint`` is set.

    Without ``endpoint`` nothing is installed (spans would cost every request and go nowhere).
    The exporter is ``opentelemetry-exporter-otlp-proto-http``; when that package is missing
    the provider still creates spans (trace ids in logs and Kafka headers) and a warning says
    that nothing is exported.

    Args:
        endpoint: Base URL of an OTLP/HTTP receiver (``/v1/traces`` is appended); empty: none.
        service_name: The ``service.name`` resource attribute.

    Returns:
        The provider (``shutdown()`` flushes it at exit).
    """
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if not endpoint:
        # No receiver: recording spans would cost every request (~65 µs on the REST hot path)
        # for nothing. The API's no-op tracer still carries a caller's traceparent along.
        _log.info("tracing_off", hint="set orchestrator.otlp_endpoint to export traces")
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _log.warning(
            "tracing_exporter_missing",
            endpoint=endpoint,
            hint="install opentelemetry-exporter-otlp-proto-http",
        )
    else:
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _log.info("tracing_enabled", endpoint=endpoint)
    trace.set_tracer_provider(provider)
    instrument_sql()
    return provider


_SPAN_KEY = "_llmopt_span"
_sql_instrumented = False


def _before_execute(
    conn: Connection, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
) -> None:
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    dialect = conn.engine.dialect.name
    database = conn.engine.url.database or ""
    current = trace.get_tracer(TRACER_NAME).start_span(
        f"{verb} {(Path(database).name if dialect == 'sqlite' else database) or dialect}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system": dialect,
            "db.name": database,
            "db.statement": statement[:2000],
        },
    )
    setattr(context, _SPAN_KEY, current)


def _after_execute(
    _conn: Connection, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool
) -> None:
    current = getattr(context, _SPAN_KEY, None)
    if current is not None:
        setattr(context, _SPAN_KEY, None)
        current.end()


def _on_error(exc: ExceptionContext) -> None:
    context = exc.execution_context
    current = getattr(context, _SPAN_KEY, None)
    if current is not None:
        current.record_exception(exc.original_exception)
        current.set_status(Status(StatusCode.ERROR, type(exc.original_exception).__name__))
        setattr(context, _SPAN_KEY, None)
        current.end()


def instrument_sql() -> None:
    """One client span per SQL statement of every engine (idempotent; a child of the current).

    ``opentelemetry-instrumentation-sqlalchemy`` is not a dependency: the same three engine
    events it uses are listened to here, on the ``Engine`` class, so engines created anywhere
    (storage, REST, gRPC, the integrations service) are covered.
    """
    global _sql_instrumented
    if _sql_instrumented:
        return
    event.listen(Engine, "before_cursor_execute", _before_execute)
    event.listen(Engine, "after_cursor_execute", _after_execute)
    event.listen(Engine, "handle_error", _on_error)
    _sql_instrumented = True
