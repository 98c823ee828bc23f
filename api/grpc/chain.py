"""One server interceptor that runs several wrapping interceptors' ``around`` steps in one wrap.

grpc.aio runs each interceptor as its own coroutine per call (``intercept_service`` awaiting the
next one's continuation), and each :class:`~api.grpc.interceptors._Wrapping` interceptor built a
new method handler with a new closure for every call. With four of them (metrics, logging, auth,
errors) that was four coroutines, four handlers and four nested handler coroutines per call.
:class:`ChainedInterceptor` resolves the handler once, wraps it once per method (cached), and
enters the same ``around`` context managers in the same order, outermost first: the behaviour of
the nested chain, with one layer of call machinery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

import grpc

from api.grpc.interceptors import _wrap, _Wrapping
from api.grpc.permissions import PACKAGE

__all__ = ["ChainedInterceptor"]


class ChainedInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """``interceptors`` (outermost first) around every ``llmopt.v1`` method, wrapped once.

    Args:
        interceptors: Wrapping interceptors, in the order they would be given to the server.
    """

    def __init__(self, interceptors: Sequence[_Wrapping]) -> None:
        self._arounds = tuple(i.around for i in interceptors)
        self._prefix = f"/{PACKAGE}."
        # method -> (the handler the server resolved, its wrapped form)
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        if len(self._arounds) == 4:
            self.around = self._around4
        else:
            self.around = self._around_n

    @asynccontextmanager
    async def _around4(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        a, b, c, d = self._arounds
        async with (
            a(method, context, streaming),
            b(method, context, streaming),
            c(method, context, streaming),
            d(method, context, streaming),
        ):
            yield

    @asynccontextmanager
    async def _around_n(
        self, method: str, context: grpc.aio.ServicerContext, streaming: bool
    ) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for around in self._arounds:
                await stack.enter_async_context(around(method, context, streaming))
            yield

    around: Callable[[str, grpc.aio.ServicerContext, bool], AbstractAsyncContextManager[None]]

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        """The method's handler, wrapped (once per method) when it is an ``llmopt.v1`` one."""
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self._prefix):
            return handler
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(handler, method, self.around)
        self._wrapped[method] = (handler, wrapped)
        return wrapped
