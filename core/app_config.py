"""App configs (CONTRACT.md §3): what an application reads and applies, per task.

Every change is a new version (``storage.configs``); an application reads the active one from
``GET /api/v1/config/{app}`` (or gRPC ``WatchConfig``) and tags its calls with
``config_version`` and ``variant``. A task's ``canary`` says which share of its calls to serve
with ``overrides`` (and tag ``variant="canary"``, ``config_version=canary.version``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from core.errors import ValidationError

__all__ = [
    "CONFIG_CHANGED",
    "AppConfig",
    "BatchingConfig",
    "CacheConfig",
    "CanaryConfig",
    "ConfigVersion",
    "PromptConfig",
    "RateLimitConfig",
    "ShadowConfig",
    "TaskConfig",
    "apply_overrides",
    "config_diff",
    "decode_tasks",
]


#: The outbox event of every new config version (``storage.configs.save_config`` queues it;
#: payload ``config``, ``author``, ``reason``, ``decision_key``; ``integrations.config_files``
#: commits it to the GitOps repository).
CONFIG_CHANGED = "config_changed"


class _Strict(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    pass


class CacheConfig(_Strict, frozen=True, kw_only=True):
    """Exact-match response cache; the key is built from ``key_fields`` of the request."""

    enabled: bool = True
    ttl_s: float = 300.0
    key_fields: tuple[str, ...] = ("model", "params", "system_prompt", "prompt", "tenant")

    def __post_init__(self) -> None:
        if self.ttl_s <= 0:
            raise ValueError("cache.ttl_s must be > 0")


class RateLimitConfig(_Strict, frozen=True, kw_only=True):
    """Token-bucket limits the application enforces for the task (``None``: no limit)."""

    requests_per_s: float | None = None
    tokens_per_min: float | None = None
    burst: int = 1

    def __post_init__(self) -> None:
        for name in ("requests_per_s", "tokens_per_min"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"rate_limit.{name} must be > 0 or null")
        if self.burst < 1:
            raise ValueError("rate_limit.burst must be >= 1")


class BatchingConfig(_Strict, frozen=True, kw_only=True):
    """Micro-batching: up to ``max_batch_size`` calls together, waiting at most ``max_wait_ms``."""

    max_batch_size: int = 8
    max_wait_ms: float = 20.0

    def __post_init__(self) -> None:
        if self.max_batch_size < 2:
            raise ValueError("batching.max_batch_size must be >= 2")
        if self.max_wait_ms <= 0:
            raise ValueError("batching.max_wait_ms must be > 0")


class PromptConfig(_Strict, frozen=True, kw_only=True):
    """Prompt changes: provider prompt caching of the fixed part, or a replacement template."""

    prompt_cache: bool = False
    template: str | None = None
    template_id: str | None = None


class CanaryConfig(_Strict, frozen=True, kw_only=True):
    """The canary of a task: serve ``weight`` of calls with ``overrides``, tagged ``version``.

    ``role`` is ``"canary"`` while a change rolls out and ``"holdback"`` while a promoted change
    is watched: then the overrides are the old values, kept on a small share of calls as a
    concurrent control. Applications treat both the same way.
    """

    version: int
    weight: float
    overrides: dict[str, Any] = msgspec.field(default_factory=dict)
    deployment_id: str | None = None
    role: Literal["canary", "holdback"] = "canary"

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError("canary.weight must be within [0, 1]")


class ShadowConfig(_Strict, frozen=True, kw_only=True):
    """Shadow evaluation: also run ``model`` on ``share`` of the task's scored requests.

    The application serves its usual answer, runs ``model`` on the same request without serving
    it, scores both answers and reports the candidate's score as ``shadow_model`` /
    ``shadow_quality`` on the call (or on its feedback). The judge then compares both models on
    the same requests (paired), which needs far fewer calls than comparing two groups.
    """

    model: str
    share: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 < self.share <= 1.0:
            raise ValueError("shadow.share must be within (0, 1]")


class TaskConfig(_Strict, frozen=True, kw_only=True):
    """What an application applies to one task."""

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


_TASKS = msgspec.json.Decoder(dict[str, TaskConfig])


def decode_tasks(value: Any) -> dict[str, TaskConfig]:
    """Validate plain data (JSON object of task → config) into task configs.

    Raises:
        ValidationError: With the path and the rule that failed.
    """
    try:
        return msgspec.convert(value, dict[str, TaskConfig])
    except (msgspec.ValidationError, ValueError, TypeError) as exc:
        raise ValidationError(f"invalid app config: {exc}") from exc


def apply_overrides(task: TaskConfig, overrides: dict[str, Any]) -> TaskConfig:
    """``task`` with the canary ``overrides`` applied (top-level fields replace, validated)."""
    data = msgspec.to_builtins(task)
    data.update(overrides)
    data["canary"] = None
    return decode_tasks({"_": data})["_"]


def config_diff(
    before: dict[str, TaskConfig], after: dict[str, TaskConfig]
) -> dict[str, dict[str, Any]]:
    """What changed from ``before`` to ``after``: ``{"task.field": {"from": x, "to": y}}``."""
    old = msgspec.to_builtins(before)
    new = msgspec.to_builtins(after)
    out: dict[str, dict[str, Any]] = {}
    for task in sorted(set(old) | set(new)):
        a = old.get(task) or {}
        b = new.get(task) or {}
        if task not in old or task not in new:
            out[task] = {"from": old.get(task), "to": new.get(task)}
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out[f"{task}.{key}"] = {"from": a.get(key), "to": b.get(key)}
    return out


class ConfigVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One stored version of an app's config, with who changed it, why, and what changed."""

    app: str
    version: int
    tasks: dict[str, TaskConfig]
    author: str
    reason: str
    diff: dict[str, dict[str, Any]]
    created_at: datetime
    decision_key: str | None = None

    def as_config(self) -> AppConfig:
        """The config an application reads."""
        return AppConfig(app=self.app, version=self.version, tasks=self.tasks)
