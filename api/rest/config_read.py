"""``GET /api/v1/config/{app}`` answered before Litestar's router: the same steps, fewer layers.

Applications read their active config far more often than anything else is called. Through
Litestar a read paid ~130 µs of Python per request: routing, the middleware chain, the guard call,
the handler's signature model, ``Request`` and ``Response`` objects. :class:`ConfigReadPath`
sits in front of the router (``app.asgi_handler``, so Litestar's ``before_send`` still adds
``x-request-id`` and the ``RateLimit-*`` headers) and does every step a route does, on the raw
scope:

request id (also in the log context), the server span (when tracing is configured), the request
timeout, the request metrics (the same ``litestar_*`` series and labels), authentication, the
permission check (``config.read`` of the one matrix), the per-identity rate limit (the same
limiter), the cached config bytes compressed once (:mod:`api.rest.encoding`) and problem+json
errors from the one mapping (:func:`api.rest.errors.problem_for`).

It hands a request to the full app, untouched, whenever it is off the common path *before* the
rate limit counted it: another method or path, an app name the route would refuse, a CORS
request when CORS is on, an API key this worker has not verified yet (the full path verifies and
caches it), missing or invalid credentials, a role without ``config.read``. After the count it
answers everything itself (404, 429, 503, 504, 500), so a request is counted once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
import structlog
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp, Receive, Scope, Send

from api.rest.auth import apply_rate_limit
from api.rest.context import request_id_of
from api.rest.encoding import MIN_COMPRESS_BYTES, compressed, negotiate
from api.rest.errors import PROBLEM_JSON, problem_for
from api.rest.etag import etag_of, not_modified
from api.rest.metrics import RequestMetricsMiddleware
from api.rest.resources import resources_of
from api.service.auth import Principal
from api.service.config_known import ConfigRead
from api.service.permissions import allowed
from core.errors import AuthenticationError
from core.tracing import headers_carrier, server_span

__all__ = ["ConfigReadPath"]

PREFIX = "/api/v1/config/"
#: The route template, as the metrics label it.
TEMPLATE = "/api/v1/config/{app}"
PERMISSION = "config.read"
MAX_APP = 512  # the route's max_length

_log = logging.getLogger(__name__)
_JSON = b"application/json"


class ConfigReadPath:
    """The config read without Litestar's per-request machinery (see the module docstring)."""

    def __init__(self, app: Litestar, full: ASGIApp, metrics: RequestMetricsMiddleware) -> None:
        self._app = app
        self._full = full
        self._metrics = metrics
        self._timeout = app.state.settings.api.request_timeout.total_seconds()
        self._cors = bool(app.state.settings.api.cors_origins)

    def _principal(self, key: bytes | None, authorization: bytes | None) -> Principal | None:
        """The caller from what needs no I/O (a verified key, a JWT); None: the full path."""
        auth = resources_of(self._app).auth
        if key:
            return auth.cached_key(key.decode("latin-1"))
        if authorization and authorization[:7].lower() == b"bearer ":
            try:
                return auth.authenticate_token(authorization[7:].decode("latin-1").strip())
            except AuthenticationError:
                return None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a config read, or pass the request to the full app."""
        fields: dict[str, Any] = scope  # type: ignore[assignment]
        path: str = fields.get("path", "")
        name = path[len(PREFIX) :]
        if (
            fields["type"] != "http"
            or fields["method"] != "GET"
            or not path.startswith(PREFIX)
            or not name
            or "/" in name
            or len(name) > MAX_APP
        ):
            await self._full(scope, receive, send)
            return
        key = authorization = None
        accept = match = b""
        for header, value in fields["headers"]:
            if header == b"x-api-key":
                if key is None:
                    key = value
            elif header == b"authorization":
                if authorization is None:
                    authorization = value
            elif header == b"accept-encoding":
                accept = value
            elif header == b"if-none-match":
                match = value
            elif header == b"origin" and self._cors:
                await self._full(scope, receive, send)
                return
        principal = self._principal(key, authorization)
        if principal is None or not allowed(principal.roles, PERMISSION):
            await self._full(scope, receive, send)
            return
        await self._serve(
            fields, send, principal, name, accept.decode("latin-1"), match.decode("latin-1")
        )

    async def _serve(
        self,
        scope: dict[str, Any],
        send: Send,
        principal: Principal,
        name: str,
        accept: str,
        match: str,
    ) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)  # type: ignore[arg-type]
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope["user"], scope["auth"] = principal, principal.subject
        progress = self._metrics.in_progress("GET", TEMPLATE)
        progress.inc()
        sent: list[int] = []
        try:
            with server_span(f"GET {scope['path']}", headers_carrier(scope["headers"])):
                try:
                    async with asyncio.timeout(self._timeout):
                        await apply_rate_limit(self._app, scope, principal.subject, False)  # type: ignore[arg-type]
                        read = await resources_of(self._app).configs.read(name)
                        await self._answer(send, sent, read, accept, match)
                except TimeoutError:
                    if sent:
                        _log.warning("request timed out after the response started")
                        return
                    timeout = HTTPException(
                        status_code=504, detail=f"request exceeded the {self._timeout:g}s timeout"
                    )
                    await self._problem(send, sent, scope, request_id, timeout)
                except Exception as exc:  # mapped as every route's errors are
                    if sent:
                        raise
                    await self._problem(send, sent, scope, request_id, exc)
        finally:
            progress.dec()
            status = sent[0] if sent else 500
            self._metrics.record("GET", TEMPLATE, status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _answer(
        self, send: Send, sent: list[int], read: ConfigRead, accept: str, match: str
    ) -> None:
        raw = read.raw
        etag = etag_of(raw)
        headers = [(b"etag", etag.encode())]
        if read.stale:
            headers += [(k.encode(), v.encode()) for k, v in read.headers().items()]
        if not_modified(match, etag):
            await self._send(send, sent, 304, headers, b"")
            return
        encoding = negotiate(accept) if len(raw) >= MIN_COMPRESS_BYTES else None
        headers.append((b"content-type", _JSON))
        body = raw
        if encoding is not None:
            body = compressed(encoding, raw)
            headers += [(b"content-encoding", encoding.encode()), (b"vary", b"Accept-Encoding")]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send(send, sent, 200, headers, body)

    async def _problem(
        self, send: Send, sent: list[int], scope: dict[str, Any], request_id: str, exc: Exception
    ) -> None:
        status, problem, extra = problem_for(exc, "GET", scope["path"], request_id)
        body = msgspec.json.encode(problem)
        headers = [(b"content-type", PROBLEM_JSON.encode())]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in (extra or {}).items()]
        headers.append((b"content-length", str(len(body)).encode()))
        await self._send(send, sent, status, headers, body)

    @staticmethod
    async def _send(
        send: Send, sent: list[int], status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        sent.append(status)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
