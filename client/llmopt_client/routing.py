"""Routing: which model, provider and overrides serve one call, and how to tag it.

:class:`RoutingTable` is compiled once per config version (canary overrides applied ahead of
time), so :meth:`RoutingTable.route` costs a dictionary lookup and one hash of the request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from llmopt_client.config import AppConfig, ShadowConfig, TaskConfig, apply_overrides
from llmopt_client.split import bucket

__all__ = ["Route", "RoutingTable", "Variant"]

Variant = Literal["baseline", "canary"]
_EMPTY = TaskConfig()


class Route(msgspec.Struct, frozen=True):
    """How to serve one call, and what to tag its telemetry with.

    Attributes:
        task: The task (call site) of the call.
        request_id: The call's id: the key of the canary split and of feedback.
        model: The model to call (``None``: the config names none, keep the app's default).
        provider: The provider the config names, if any.
        params: Request parameters the config sets (``temperature``, ``max_tokens``...).
        overrides: The canary's overrides applied to this call (empty on the baseline).
        variant: ``"baseline"`` or ``"canary"``: which side of a rollout serves the call.
        config_version: The config version to report (``None``: the app has no config yet).
        config: The whole task config served (cache, rate limit, batching, prompt, shadow).
        shadow: The shadow candidate when this request is in its sample, else ``None``.
    """

    task: str
    request_id: str
    model: str | None
    provider: str | None
    params: dict[str, Any]
    overrides: dict[str, Any]
    variant: Variant
    config_version: int | None
    config: TaskConfig
    shadow: ShadowConfig | None = None


@dataclass(frozen=True, slots=True)
class _Side:
    config: TaskConfig
    overrides: dict[str, Any]
    version: int | None


@dataclass(frozen=True, slots=True)
class _TaskRoutes:
    baseline: _Side
    canary: _Side | None
    weight: float


class RoutingTable:
    """The routes of one config version (see the module docstring).

    Args:
        config: The app's active config, or ``None`` while none is known (every call then goes
            to the baseline with the app's own defaults and ``config_version=None``).
    """

    def __init__(self, config: AppConfig | None) -> None:
        self.config = config
        self.version = config.version if config is not None else None
        self._tasks: dict[str, _TaskRoutes] = {}
        self._default = _TaskRoutes(_Side(_EMPTY, {}, self.version), None, 0.0)
        if config is None:
            return
        for name, task in config.tasks.items():
            canary = task.canary
            base = _Side(task, {}, config.version)
            if canary is None or canary.weight <= 0:
                self._tasks[name] = _TaskRoutes(base, None, 0.0)
                continue
            served = apply_overrides(task, canary.overrides)
            side = _Side(served, canary.overrides, canary.version)
            self._tasks[name] = _TaskRoutes(base, side, canary.weight)

    def route(self, task: str, request_id: str) -> Route:
        """The route of call ``request_id`` of ``task`` (a task without config: the baseline)."""
        routes = self._tasks.get(task, self._default)
        side, variant = routes.baseline, "baseline"
        point = -1.0
        if routes.canary is not None:
            point = bucket(request_id)
            if point < routes.weight:
                side, variant = routes.canary, "canary"
        config = side.config
        shadow = config.shadow
        if shadow is not None and not _in_shadow_sample(request_id, shadow.share):
            shadow = None
        return Route(
            task,
            request_id,
            config.model,
            config.provider,
            config.params,
            side.overrides,
            variant,  # type: ignore[arg-type]
            side.version,
            config,
            shadow,
        )


def _in_shadow_sample(request_id: str, share: float) -> bool:
    """Whether the shadow candidate also runs on this request (a hash apart from the split)."""
    return bucket(request_id + "#shadow") < share
