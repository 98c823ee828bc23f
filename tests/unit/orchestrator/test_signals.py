from __future__ import annotations

import asyncio
import os
import signal

import pytest

from orchestrator import install_signal_handlers


async def _raise_and_wait(signum: signal.Signals) -> None:
    os.kill(os.getpid(), signum)
    for _ in range(100):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signals_set_the_event(signum: signal.Signals) -> None:
    async def scenario() -> None:
        stop = asyncio.Event()
        remove = install_signal_handlers(stop)
        try:
            os.kill(os.getpid(), signum)
            await asyncio.wait_for(stop.wait(), 2)
        finally:
            remove()

    asyncio.run(scenario())


def test_sighup_calls_a_sync_reload_and_does_not_stop() -> None:
    calls: list[str] = []

    async def scenario() -> bool:
        stop = asyncio.Event()
        done = asyncio.Event()

        def reload() -> None:
            calls.append("reload")
            done.set()

        remove = install_signal_handlers(stop, reload)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(done.wait(), 2)
        finally:
            remove()
        return stop.is_set()

    assert asyncio.run(scenario()) is False
    assert calls == ["reload"]


def test_sighup_runs_an_async_reload_and_survives_a_failing_one() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        done = asyncio.Event()

        async def reload() -> None:
            await asyncio.sleep(0)
            calls.append("reload")
            if len(calls) == 1:
                raise ValueError("invalid config")
            done.set()

        remove = install_signal_handlers(stop, reload)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(0.1)
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(done.wait(), 2)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), 2)
        finally:
            remove()

    asyncio.run(scenario())
    assert calls == ["reload", "reload"]


def test_remove_restores_the_default_handlers() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    async def scenario() -> None:
        remove = install_signal_handlers(asyncio.Event(), lambda: None)
        assert signal.getsignal(signal.SIGHUP) is not before[signal.SIGHUP]
        remove()

    asyncio.run(scenario())
    after = {s: signal.getsignal(s) for s in before}
    assert after[signal.SIGTERM] == signal.SIG_DFL
    assert after[signal.SIGHUP] == signal.SIG_DFL
    assert after[signal.SIGINT] is signal.default_int_handler
