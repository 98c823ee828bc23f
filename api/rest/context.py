"""Per-request context: request id, timeout, access log and the headers every response carries.

The request id comes from ``x-request-id`` (when it is a sane token) or is created; it is bound to
the log context, put in every response (also errors and 404s, through ``before_send``) and in
every problem body. Rate-limit headers computed by :mod:`api.rest.auth` are added the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from typing import Any

import structlog
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from core.tracing import headers_carrier, server_span

__all__ = ["RequestContextMiddleware", "before_send", "request_id_of", "set_rate_headers"]

_log = structlog.get_logger("api.rest.access")
_stdlib_log = logging.getLogger(__name__)
#: Gates the access log (debug): the orchestrator keeps the standard library's level in step
#: with structlog's, and checking it is far cheaper than building the event for nothing.
_access_log = logging.getLogger("api.rest.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_KEY = "llmopt"


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    found: dict[str, Any] = state.setdefault(_KEY, {})
    return found


def request_id_of(scope: Scope) -> str:
    """The request's id: the client's ``x-request-id`` when sane, else a new one."""
    state = _state(scope)
    found = state.get("request_id")
    if found is None:
        found = os.urandom(16).hex()
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                text = value.decode("latin-1")
                if _VALID_ID.match(text):
                    found = text
                break
        state["request_id"] = found
    return str(found)


def set_rate_headers(scope: Scope, headers: dict[str, str]) -> None:
    """Headers (``RateLimit-*``) to add to this request's response."""
    _state(scope)["rate_headers"] = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


class RequestContextMiddleware(ASGIMiddleware):
    """Assigns the request id, times the request and enforces ``api.request_timeout``."""

    scopes = ("http",)  # type: ignore[assignment]

    def __init__(self, timeout_s: float) -> None:
        self._timeout = timeout_s

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        """Run the request within the timeout; 504 when it is exceeded before answering."""
        state = _state(scope)
        state["started"] = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id_of(scope))
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        name = f"{scope.get('method', 'HTTP')} {scope.get('path', '')}"
        try:
            # One server span per request (continuing the caller's traceparent): storage spans
            # and the Kafka headers of ingested telemetry belong to it (see core.tracing).
            with server_span(name, headers_carrier(scope.get("headers", ()))):
                async with asyncio.timeout(self._timeout):
                    await next_app(scope, receive, tracking_send)
        except TimeoutError:
            if started:
                _stdlib_log.warning("request timed out after the response started")
                return
            raise HTTPException(
                status_code=504, detail=f"request exceeded the {self._timeout:g}s timeout"
            ) from None
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


async def before_send(message: Message, scope: Scope) -> None:
    """Add the request id and rate-limit headers to every response; log it.

    The headers are set on the raw list in one pass (replacing any of the same name):
    Litestar's ``MutableScopeHeaders`` decodes every header on each assignment, which was a
    tenth of a config read.
    """
    if message["type"] != "http.response.start":
        return
    state = _state(scope)
    extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id_of(scope).encode("latin-1"))]
    extra += state.get("rate_headers", ())
    names = {name for name, _ in extra}
    message["headers"] = [
        header for header in message.get("headers", ()) if header[0].lower() not in names
    ] + extra
    if _access_log.isEnabledFor(logging.DEBUG):
        started = state.get("started")
        _log.debug(
            "request",
            request_id=request_id_of(scope),
            method=scope.get("method"),
            path=scope.get("path"),
            status=message["status"],
            duration_ms=None
            if started is None
            else round((time.perf_counter() - started) * 1e3, 2),
        )
