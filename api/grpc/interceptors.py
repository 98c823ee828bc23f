"""Server interceptors: metrics, then request context and logging, then auth, then errors.

Each wraps the method handler the next one returns, so it runs around the servicer for every
kind of call (unary and streaming). Only ``llmopt.v1`` methods are wrapped; the standard health
and reflection services pass through untouched (they are open and need no error mapping).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
import structlog
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from sqlalchemy.exc import SQLAlchemyError

from api.grpc.errors import abort_with
from api.grpc.initial_metadata import flush, gathering
from api.grpc.live_layer import LiveLayer
from api.grpc.permissions import PACKAGE, permission_for
from api.service.auth import Authenticator, Principal
from api.service.permissions import allowed
from api.service.rate_limit import RateLimiter
from core.errors import (
    AuthenticationError,
    OptimizerError,
    OverloadedError,
    PermissionDeniedError,
)
from core.settings import ApiSettings
from core.tracing import headers_carrier, server_span

__all__ = [
    "AuthInterceptor",
    "ErrorInterceptor",
    "GrpcMetrics",
    "LoggingInterceptor",
    "MetricsInterceptor",
    "current_principal",
    "current_request_id",
    "principal_of",
]

_log = structlog.get_logger("api.grpc.access")
_stdlib_log = logging.getLogger(__name__)
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")

current_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "llmopt_grpc_principal", default=None
)
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "llmopt_grpc_request_id", default=""
)

Around = Callable[[str, grpc.aio.ServicerContext, bool], AbstractAsyncContextManager[None]]


def principal_of() -> Principal:
    """The authenticated caller of the current call (set by :class:`AuthInterceptor`)."""
    found = current_principal.get()
    if found is None:
        raise AuthenticationError("missing credentials: send x-api-key or a Bearer token")
    return found


def _metadata(context: grpc.aio.ServicerContext, name: str) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == name:
            return value if isinstance(value, str) else None
    return None


def _wrap(handler: Any, method: str, around: Around) -> Any:
    """``handler`` with ``around(method, context, streaming_response)`` around its behaviour."""
    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary = handler.unary_unary

        async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(method, context, False):
                response = await unary(request, context)
                await flush(context)
                return response

        return grpc.unary_unary_rpc_method_handler(unary_unary, **kwargs)
    if handler.stream_unary is not None:
        client_stream = handler.stream_unary

        async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(method, context, False):
                response = await client_stream(requests, context)
                await flush(context)
                return response

        return grpc.stream_unary_rpc_method_handler(stream_unary, **kwargs)
    if handler.unary_stream is not None:
        server_stream = handler.unary_stream

        async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            async with around(method, context, True):
                async for item in server_stream(request, context):
                    await flush(context)
                    yield item

        return grpc.unary_stream_rpc_method_handler(unary_stream, **kwargs)
    bidi = handler.stream_stream

    async def stream_stream(requests: Any, context: grpc.aio.ServicerContext) -> Any:
        async with around(method, context, True):
            async for item in bidi(requests, context):
                await flush(context)
                yield item

    return grpc.stream_stream_rpc_method_handler(stream_stream, **kwargs)


class _Wrapping(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps the handlers of ``llmopt.v1`` methods with :meth:`around`."""

    def around(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(f"/{PACKAGE}."):
            return handler
        return _wrap(handler, method, self.around)


def _code_of(context: grpc.aio.ServicerContext, error: BaseException | None) -> str:
    if isinstance(error, asyncio.CancelledError):
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
    code = context.code()
    if code is None or code == 0:
        return "OK" if error is None else "UNKNOWN"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return str(status.name)
    return "UNKNOWN"


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


class GrpcMetrics:
    """Calls per method and status code, and their latency."""

    _by_registry: dict[int, GrpcMetrics] = {}

    def __init__(self, registry: CollectorRegistry) -> None:
        self.calls = Counter(
            "llmopt_grpc_requests",
            "gRPC calls handled, by service, method and status code.",
            ("service", "method", "code"),
            registry=registry,
        )
        self.latency = Histogram(
            "llmopt_grpc_request_duration_seconds",
            "gRPC call duration (streams: until they end), by service and method.",
            ("service", "method"),
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
        )

    @classmethod
    def of(cls, registry: CollectorRegistry = REGISTRY) -> GrpcMetrics:
        """The metrics registered once in ``registry``."""
        found = cls._by_registry.get(id(registry))
        if found is None:
            found = cls._by_registry[id(registry)] = cls(registry)
        return found


class MetricsInterceptor(_Wrapping):
    """Counts every call by status code and observes its duration."""

    def __init__(self, metrics: GrpcMetrics) -> None:
        self._metrics = metrics

    @asynccontextmanager
    async def around(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        """Count and time the call."""
        service, name = _split(method)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._metrics.calls.labels(service, name, _code_of(context, error)).inc()
            self._metrics.latency.labels(service, name).observe(time.perf_counter() - started)


class LoggingInterceptor(_Wrapping):
    """Assigns the request id (``x-request-id`` when sane), sends it back, logs each call."""

    @asynccontextmanager
    async def around(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        """Bind the request id for the call and log it at the end."""
        given = _metadata(context, "x-request-id")
        request_id = given if given and _VALID_ID.match(given) else uuid.uuid4().hex
        token = current_request_id.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        error: BaseException | None = None
        carrier = headers_carrier(context.invocation_metadata() or ())
        try:
            with (
                gathering((("x-request-id", request_id),)),
                server_span(method.lstrip("/"), carrier, **{"rpc.system": "grpc"}),
            ):
                try:
                    yield
                finally:  # an error, or a stream without messages: the status carries it
                    await flush(context)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _log.debug(
                "grpc_call",
                request_id=request_id,
                method=method,
                code=_code_of(context, error),
                duration_ms=round((time.perf_counter() - started) * 1e3, 2),
            )
            structlog.contextvars.unbind_contextvars("request_id")
            current_request_id.reset(token)


class AuthInterceptor(_Wrapping):
    """``x-api-key`` or ``authorization: Bearer``, the rate limit, then the method's permission."""

    def __init__(self, layer: LiveLayer) -> None:
        self._layer = layer  # read per call: a settings reload swaps auth, limits and keys

    @property
    def _auth(self) -> Authenticator:
        return self._layer.current.auth

    @property
    def _limiter(self) -> RateLimiter:
        return self._layer.current.limiter

    @property
    def _settings(self) -> ApiSettings:
        return self._layer.current.settings.api

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        key = _metadata(context, "x-api-key")
        if key:
            cached = self._auth.cached_key(key)
            if cached is not None:
                return cached
            return await asyncio.to_thread(self._auth.authenticate_key, key)
        bearer = _metadata(context, "authorization")
        if bearer and bearer[:7].lower() == "bearer ":
            return self._auth.authenticate_token(bearer[7:].strip())
        raise AuthenticationError("missing credentials: send x-api-key or a Bearer token")

    async def _limit(self, identity: str, anonymous: bool) -> None:
        api = self._settings
        rate = api.rate_limit.anonymous_per_s if anonymous else api.rate_limit.per_s
        burst = api.rate_limit.anonymous_burst if anonymous else api.rate_limit.burst
        if rate <= 0:
            return
        decision = await self._limiter.hit(identity, rate, burst)
        if not decision.allowed:
            raise OverloadedError(
                f"rate limit of {rate:g}/s (burst {burst}) exceeded",
                retry_after=decision.retry_after_s,
                cause="rate_limited",
            )

    async def check(self, method: str, context: grpc.aio.ServicerContext) -> Principal:
        """Authenticate, rate-limit and authorize the call (raises optimizer errors)."""
        try:
            principal = await self._principal(context)
        except AuthenticationError:
            peer = context.peer() or "unknown"
            ip = peer.rsplit(":", 1)[0] if peer.count(":") > 1 else peer
            await self._limit(f"ip:{ip}", anonymous=True)  # brute force counts per address
            raise
        await self._limit(principal.subject, anonymous=False)
        permission = permission_for(method)
        if not allowed(principal.roles, permission):
            raise PermissionDeniedError(
                f"roles {', '.join(principal.roles)} lack the permission {permission!r}"
            )
        return principal

    @asynccontextmanager
    async def around(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        """Refuse the call or run it with its principal bound."""
        try:
            principal = await self.check(method, context)
        except (AuthenticationError, PermissionDeniedError, OverloadedError) as exc:
            await abort_with(context, exc)
        token = current_principal.set(principal)
        try:
            yield
        finally:
            current_principal.reset(token)


class ErrorInterceptor(_Wrapping):
    """Maps what the servicer raises to a status (:mod:`api.grpc.errors`); bounds unary calls."""

    def __init__(self, unary_timeout_s: Callable[[], float]) -> None:
        self._timeout_of = unary_timeout_s  # read per call: a settings reload may change it

    @asynccontextmanager
    async def around(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        """Turn what escapes the servicer into a status."""
        timeout = self._timeout_of()
        try:
            if streaming:
                yield
            else:
                async with asyncio.timeout(timeout):
                    yield
        except grpc.aio.AbortError:
            raise
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"the call exceeded the server's {timeout:g}s limit",
            )
        except Exception as exc:
            if not isinstance(exc, OptimizerError | SQLAlchemyError):
                _stdlib_log.error(
                    "unhandled error in %s (request_id %s)",
                    method,
                    current_request_id.get(),
                    exc_info=exc,
                )
            await abort_with(context, exc)
