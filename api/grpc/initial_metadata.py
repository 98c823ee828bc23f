"""A call's initial metadata, gathered while it runs and sent once, before its first answer.

gRPC sends initial metadata at most once. The logging interceptor opens a holder with
``x-request-id`` (:func:`gathering`); a servicer adds what it learns while serving (e.g.
``x-llmopt-config-stale`` for a stale config) with :func:`add_initial_metadata`; the interceptor
wrapper sends everything just before the first response message, or before the status when
there is none (:func:`flush`).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import grpc

__all__ = ["add_initial_metadata", "flush", "gathering"]

_log = logging.getLogger(__name__)


@dataclass
class _Pending:
    pairs: list[tuple[str, str]] = field(default_factory=list)
    sent: bool = False


_pending: contextvars.ContextVar[_Pending | None] = contextvars.ContextVar(
    "llmopt_grpc_initial_metadata", default=None
)


@contextmanager
def gathering(pairs: Iterable[tuple[str, str]]) -> Iterator[None]:
    """Gather the call's initial metadata, starting with ``pairs``, until the block ends."""
    token = _pending.set(_Pending(list(pairs)))
    try:
        yield
    finally:
        _pending.reset(token)


async def add_initial_metadata(
    context: grpc.aio.ServicerContext, pairs: Iterable[tuple[str, str]]
) -> None:
    """Add ``pairs`` to the call's initial metadata (sent now when nothing gathers it)."""
    pending = _pending.get()
    if pending is None:
        await context.send_initial_metadata(tuple(pairs))
    elif pending.sent:
        _log.warning("initial metadata already sent; dropped %s", [k for k, _ in pairs])
    else:
        pending.pairs.extend(pairs)


async def flush(context: grpc.aio.ServicerContext) -> None:
    """Send the gathered initial metadata unless it was sent already."""
    pending = _pending.get()
    if pending is None or pending.sent:
        return
    pending.sent = True
    await context.send_initial_metadata(tuple(pending.pairs))
