"""The app config as the optimizer serves it (CONTRACT.md §3), decoded leniently.

These types mirror the server's ``core.app_config`` field for field, but accept fields they do
not know (a newer optimizer may add some: an older client must keep working) and are decoded
with :mod:`msgspec`, the SDK's only dependency besides httpx.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "AppConfig",
    "BatchingConfig",
    "CacheConfig",
    "CanaryConfig",
    "PromptConfig",
    "RateLimitConfig",
    "ShadowConfig",
    "TaskConfig",
    "apply_overrides",
    "decode_config",
]


class CacheConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Exact-match response cache; the key is built from ``key_fields`` of the request."""

    enabled: bool = True
    ttl_s: float = 300.0
    key_fields: tuple[str, ...] = ("model", "params", "system_prompt", "prompt", "tenant")


class RateLimitConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Token-bucket limits for the task (``None``: no limit of that kind)."""

    requests_per_s: float | None = None
    tokens_per_min: float | None = None
    burst: int = 1


class BatchingConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Micro-batching: up to ``max_batch_size`` calls, waiting at most ``max_wait_ms``."""

    max_batch_size: int = 8
    max_wait_ms: float = 20.0


class PromptConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Provider prompt caching of the fixed part, or a replacement template."""

    prompt_cache: bool = False
    template: str | None = None
    template_id: str | None = None


class CanaryConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Serve ``weight`` of the calls with ``overrides`` and tag them with ``version``.

    ``role`` is ``"holdback"`` while a promoted change is watched (the overrides are then the
    old values); both roles are served the same way.
    """

    version: int
    weight: float
    overrides: dict[str, Any] = msgspec.field(default_factory=dict)
    deployment_id: str | None = None
    role: Literal["canary", "holdback"] = "canary"


class ShadowConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Also run ``model`` on ``share`` of the scored requests, without serving its answer."""

    model: str
    share: float = 0.1


class TaskConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the application applies to one task."""

    model: str | None = None
    provider: str | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    cache: CacheConfig | None = None
    rate_limit: RateLimitConfig | None = None
    batching: BatchingConfig | None = None
    prompt: PromptConfig | None = None
    canary: CanaryConfig | None = None
    shadow: ShadowConfig | None = None


class AppConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The active config of an application: a version and one :class:`TaskConfig` per task."""

    app: str
    version: int
    tasks: dict[str, TaskConfig] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(AppConfig)


def decode_config(raw: bytes) -> AppConfig:
    """Decode ``GET /api/v1/config/{app}``'s body.

    Raises:
        msgspec.ValidationError: The body is not an app config.
        msgspec.DecodeError: The body is not JSON.
    """
    return _DECODER.decode(raw)


def apply_overrides(task: TaskConfig, overrides: dict[str, Any]) -> TaskConfig:
    """``task`` with a canary's ``overrides`` applied: top-level fields replace, canary cleared.

    Raises:
        msgspec.ValidationError: The overrides do not fit the task config's fields.
    """
    if not overrides:
        return msgspec.structs.replace(task, canary=None)
    data = msgspec.to_builtins(task)
    data.update(overrides)
    data["canary"] = None
    return msgspec.convert(data, TaskConfig)
