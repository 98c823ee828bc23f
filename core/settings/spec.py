"""One declaration per setting: default, rule and doc in the dataclass field's metadata.

``setting(default, doc, rule)`` is a ``dataclasses.field`` whose metadata carries a
:class:`Spec`; the loader's validation and conversion, the ``LLMOPT_*`` variable names and the
configuration reference are all read from it (:func:`walk`). A field whose default is itself a
settings dataclass is a nested section (``[default.analyzers.anomaly]``,
``LLMOPT_ANALYZERS__ANOMALY__Z_WARNING``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, is_dataclass, replace
from datetime import timedelta
from typing import Any, TypeVar

from core.settings.rules import Bool, Duration, Int, Num, Rule, StrList, Text

__all__ = [
    "Entry",
    "Spec",
    "default_of",
    "env_name",
    "is_section",
    "section",
    "setting",
    "spec_of",
    "updated",
    "walk",
]

T = TypeVar("T")
S = TypeVar("S")

ENV_PREFIX = "LLMOPT"


@dataclass(frozen=True, slots=True)
class Spec:
    """What the loader, the variables and the reference know of one setting.

    Attributes:
        doc: What it means (the reference's last column).
        rule: What its value must be.
        shown: The default as the reference shows it, when the value alone would mislead
            (``empty: start the embedded broker``); ``None``: the value.
        secret: Never echoed in an error or a ``repr``.
        restart: Read at start only: a reload that changes it says a restart is needed.
        old: The key it had before (``analyzers.anomaly_z_warning``): still accepted, with a
            deprecation warning naming this one.
    """

    doc: str
    rule: Rule
    shown: str | None = None
    secret: bool = False
    restart: bool = False
    old: str | None = None


def env_name(key: str) -> str:
    """The ``LLMOPT_*`` variable of a dotted key (``__`` for each level)."""
    return f"{ENV_PREFIX}_" + "__".join(p.upper() for p in key.split("."))


def _rule_for(default: Any) -> Rule:
    if isinstance(default, bool):
        return Bool()
    if isinstance(default, int):
        return Int(lo=0)
    if isinstance(default, float):
        return Num(lo=0)
    if isinstance(default, timedelta):
        return Duration()
    if isinstance(default, tuple):
        return StrList()
    if isinstance(default, str):
        return Text()
    raise TypeError(f"no default rule for {default!r}: give one")


def setting(
    default: T,
    doc: str,
    rule: Rule | None = None,
    *,
    shown: str | None = None,
    secret: bool = False,
    restart: bool = False,
    old: str | None = None,
) -> T:
    """Declare a setting: its default, what it means and the rule its value follows.

    Without ``rule``, the default's type decides: an integer or a number >= 0, a bool, a
    positive duration, a list of strings, a string.

    Args:
        default: The default value (a mapping is copied for each instance).
        doc: What the setting means, for the configuration reference.
        rule: The rule of its values.
        shown: How the reference shows the default, when the value alone would mislead.
        secret: Never shown in errors or a ``repr``.
        restart: Only a restart applies a change (the reload says so).
        old: Its former key, accepted with a deprecation warning.

    Returns:
        A dataclass field (typed as the default, as ``dataclasses.field`` is).
    """
    spec = Spec(doc, rule or _rule_for(default), shown, secret, restart, old)
    meta = {"setting": spec}
    if isinstance(default, Mapping):
        copy = dict(default)
        made: T = field(default_factory=lambda: dict(copy), repr=not secret, metadata=meta)  # type: ignore[assignment]
        return made
    made = field(default=default, repr=not secret, metadata=meta)
    return made


def section(cls: type[S], doc: str = "") -> S:
    """Declare a nested section: a frozen settings dataclass whose defaults are its own.

    Args:
        cls: The section's dataclass (every field declared with :func:`setting`).
        doc: What the section is about; default: the first line of ``cls``'s docstring.

    Returns:
        A dataclass field whose default is ``cls()``.
    """
    about = doc or (cls.__doc__ or "").strip().splitlines()[0]
    made: S = field(default=cls(), metadata={"section": about})
    return made


def spec_of(f: Field[Any]) -> Spec:
    """The :class:`Spec` of a settings field."""
    spec = f.metadata.get("setting")
    if not isinstance(spec, Spec):
        raise TypeError(f"settings field {f.name} is not declared with setting(...)")
    return spec


def default_of(f: Field[Any]) -> Any:
    """A field's default value (from its factory when it has one)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise TypeError(f"settings field {f.name} has no default")


def is_section(f: Field[Any]) -> bool:
    """True when the field is a nested section (its default is a settings dataclass)."""
    default = default_of(f)
    return is_dataclass(default) and not isinstance(default, type)


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting as :func:`walk` finds it."""

    key: str  # dotted: ``analyzers.anomaly.z_warning``
    field: Field[Any]
    spec: Spec

    @property
    def default(self) -> Any:
        """The default value."""
        return default_of(self.field)

    @property
    def env(self) -> str:
        """Its ``LLMOPT_*`` variable: ``LLMOPT_ANALYZERS__ANOMALY__Z_WARNING``."""
        return env_name(self.key)

    def get(self, root: Any) -> Any:
        """Its value in ``root`` (the object :func:`walk` started from)."""
        value = root
        for part in self.key.split("."):
            value = getattr(value, part)
        return value


def walk(
    cls: type, prefix: str = "", *, skip: Callable[[str], bool] | None = None
) -> Iterator[Entry]:
    """Every setting of a settings dataclass, nested sections included, in declaration order."""
    for f in fields(cls):
        key = f"{prefix}{f.name}"
        if skip is not None and skip(key):
            continue
        if is_section(f):
            yield from walk(type(default_of(f)), f"{key}.")
        else:
            yield Entry(key, f, spec_of(f))


def updated(settings: S, **changes: Any) -> S:
    """A copy of a settings object with some values changed; ``__`` reaches into a nested section.

    ``updated(analyzers, min_samples=5, anomaly__end_windows=3)`` is
    ``replace(analyzers, min_samples=5, anomaly=replace(analyzers.anomaly, end_windows=3))``.
    """
    flat: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for name, value in changes.items():
        head, sep, rest = name.partition("__")
        if sep:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[name] = value
    for head, inner in nested.items():
        flat[head] = updated(getattr(settings, head), **inner)
    return replace(settings, **flat)  # type: ignore[type-var]
