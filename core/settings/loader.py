"""Load, validate and freeze the settings: dynaconf reads, the fields' specs decide.

Sources: ``settings.toml``, ``.secrets.toml`` and ``LLMOPT_*`` variables (``__`` for nesting).
Every value is checked against its field's rule (:mod:`core.settings.spec`); a value that fails
raises :class:`core.errors.ConfigurationError` whose message names the key, the value and the
rule. A former key (``Spec.old``) is moved to its new place with a deprecation warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from dynaconf import Dynaconf

from core.errors import ConfigurationError
from core.settings.relations import check_relations
from core.settings.root import Settings, entries
from core.settings.spec import ENV_PREFIX, Entry, default_of, env_name, is_section, spec_of

__all__ = ["SettingsDeprecationWarning", "load_settings"]

# Keys that no longer exist, and what replaced them: setting one is an error, never ignored.
_RETIRED = {
    "canary.quality_tolerance": "decisions.quality_tolerance (one tolerance for model "
    "selection, the judge and the plans)",
    "canary.max_stage_duration": "canary.max_rollout_duration (weights are planned from "
    "the evidence; a rollout without a verdict this long is rolled back)",
}


class SettingsDeprecationWarning(FutureWarning):
    """A setting was given under its former key (shown to operators, unlike DeprecationWarning)."""


def load_settings(root: str | Path | None = None, *, environment: str | None = None) -> Settings:
    """Load, validate and freeze the settings.

    Args:
        root: Folder holding ``settings.toml`` and ``.secrets.toml`` (default: the working dir).
        environment: ``development``, ``production`` …; default from ``LLMOPT_ENV``, else
            ``development``.

    Returns:
        The frozen settings.

    Raises:
        ConfigurationError: When a value breaks a rule; the message names key, value and rule.
    """
    base = Path(root) if root is not None else Path.cwd()
    kwargs: dict[str, Any] = {}
    if environment is not None:
        kwargs["env"] = environment
    raw = Dynaconf(
        envvar_prefix=ENV_PREFIX,
        settings_files=[str(base / "settings.toml"), str(base / ".secrets.toml")],
        environments=True,
        env_switcher=f"{ENV_PREFIX}_ENV",
        default_env="default",
        merge_enabled=True,
        **kwargs,
    )
    env = str(raw.current_env).lower()
    data = _lower(raw.as_dict(), Settings)
    _check_retired(data)
    _move_old_keys(data)
    values = _build(Settings, data, "", env)
    settings = Settings(env=env, **values)
    check_relations(settings)
    return settings


def _lower(data: Any, cls: type) -> dict[str, Any]:
    """Lower-case the keys of a section and of its nested sections (never of table values)."""
    if not isinstance(data, Mapping):
        return {}
    out = {str(k).lower(): v for k, v in data.items()}
    for f in fields(cls):
        if is_section(f) and isinstance(out.get(f.name), Mapping):
            out[f.name] = _lower(out[f.name], type(default_of(f)))
    return out


def _pop(data: dict[str, Any], key: str) -> tuple[bool, Any]:
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part)
        if not isinstance(node, dict):
            return False, None
    if last not in node:
        return False, None
    return True, node.pop(last)


def _put(data: dict[str, Any], key: str, value: Any) -> bool:
    """Set ``key`` unless it is already set; False when it was."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigurationError(f"invalid settings: {part} must be a table in {key}")
    if last in node:
        return False
    node[last] = value
    return True


def _check_retired(data: dict[str, Any]) -> None:
    for key, instead in _RETIRED.items():
        section, name = key.split(".")
        table = data.get(section)
        if isinstance(table, Mapping) and name in table:
            raise ConfigurationError(f"invalid settings: {key} was retired; set {instead} instead")


def _move_old_keys(data: dict[str, Any]) -> None:
    """Move every value given under a former key to its new key, warning once per key."""
    for entry in entries():
        old = entry.spec.old
        if old is None:
            continue
        found, value = _pop(data, old)
        if not found:
            continue
        if not _put(data, entry.key, value):
            raise ConfigurationError(
                f"invalid settings: {old} and {entry.key} are both set; {old} is the former "
                f"name of {entry.key}: keep only {entry.key}"
            )
        warnings.warn(
            f"setting {old} ({env_name(old)}) is deprecated: it is now {entry.key} ({entry.env})",
            SettingsDeprecationWarning,
            stacklevel=3,
        )


def _build(cls: type, data: Mapping[str, Any], prefix: str, env: str) -> dict[str, Any]:
    """The constructor arguments of ``cls`` from its raw section: checked and typed."""
    out: dict[str, Any] = {}
    for f in fields(cls):
        if prefix == "" and f.name == "env":
            continue
        key = f"{prefix}{f.name}"
        if is_section(f):
            sub = data.get(f.name, {})
            if not isinstance(sub, Mapping):
                raise ConfigurationError(
                    f"invalid settings: {key} must be a table but it is {sub!r} in env {env}"
                )
            sub_cls = type(default_of(f))
            out[f.name] = sub_cls(**_build(sub_cls, sub, f"{key}.", env))
        elif f.name in data:
            out[f.name] = _value(Entry(key, f, spec_of(f)), data[f.name], env)
    return out


def _value(entry: Entry, value: Any, env: str) -> Any:
    rule = entry.spec.rule
    if rule.accepts(value):
        return rule.convert(value)
    shown = f"a {type(value).__name__} (a secret: not shown)" if entry.spec.secret else repr(value)
    raise ConfigurationError(
        f"invalid settings: {entry.key} must be {rule.text} but it is {shown} in env {env}"
    )
