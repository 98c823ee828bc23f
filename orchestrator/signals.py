"""Unix signal handling for the orchestrator: stop on SIGTERM/SIGINT, reload on SIGHUP."""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import Awaitable, Callable

import structlog

__all__ = ["ReloadCallback", "install_signal_handlers"]

#: Called on SIGHUP; may be a plain function or a coroutine function.
ReloadCallback = Callable[[], Awaitable[object] | None]

_log = structlog.get_logger(__name__)


def install_signal_handlers(
    stop_event: asyncio.Event,
    reload: ReloadCallback | None = None,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set ``stop_event`` and SIGHUP call ``reload``.

    The reload callback runs on the event loop; when it returns an awaitable, that runs as a
    task. An exception from it is logged and never stops the process, so a bad reload keeps the
    old configuration running.

    Args:
        stop_event: Set on SIGTERM or SIGINT.
        reload: Called on SIGHUP; without it SIGHUP is only logged.
        loop: The loop to install on; defaults to the running loop.

    Returns:
        A function that removes the three handlers again (restoring the defaults).
    """
    target = loop or asyncio.get_running_loop()
    tasks: set[asyncio.Future[object]] = set()

    def on_stop(signum: signal.Signals) -> None:
        _log.info("signal_received", signal=signum.name, action="stop")
        stop_event.set()

    def on_reload() -> None:
        _log.info("signal_received", signal="SIGHUP", action="reload")
        if reload is None:
            return
        try:
            outcome = reload()
        except Exception as exc:
            _log.error("reload_failed", error=repr(exc))
            return
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome, loop=target)
            tasks.add(task)
            task.add_done_callback(_finish_reload(tasks))

    for signum in (signal.SIGTERM, signal.SIGINT):
        target.add_signal_handler(signum, on_stop, signum)
    target.add_signal_handler(signal.SIGHUP, on_reload)

    def remove() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            target.remove_signal_handler(signum)

    return remove


def _finish_reload(
    tasks: set[asyncio.Future[object]],
) -> Callable[[asyncio.Future[object]], None]:
    def done(task: asyncio.Future[object]) -> None:
        tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _log.error("reload_failed", error=repr(exc))

    return done
