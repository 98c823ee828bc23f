"""Reload requests from server worker processes, carried to the orchestrator's reload hook."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from typing import Any

from api.service import ReloadHook

__all__ = ["relay_reloads"]


async def relay_reloads(reloads: Any, hook: ReloadHook) -> None:
    """Call ``hook`` for each item a worker put on ``reloads`` (a queue), until ``None``.

    A worker puts one item per ``POST /api/v1/admin/reload`` or ``AdminService/Reload`` it
    answered; the hook logs its own verdict, so its failures are not raised here.
    """
    while True:
        item = await asyncio.to_thread(reloads.get)
        if item is None:
            return
        with contextlib.suppress(Exception):
            result = hook()
            if inspect.isawaitable(result):
                await result
