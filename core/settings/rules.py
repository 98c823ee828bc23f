"""Rules a setting's value must follow: each one checks, converts and says what it wants.

A rule's :attr:`Rule.text` completes "``key`` must be ..." in the start-up error and fills the
"rule" column of the configuration reference, so the two never disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from typing_extensions import override

from core.durations import parse_duration

__all__ = [
    "Bool",
    "BrokerList",
    "Check",
    "Duration",
    "Int",
    "Num",
    "OneOf",
    "Rule",
    "StrList",
    "Table",
    "Text",
    "Url",
]


class Rule:
    """What a value must be; subclasses override :meth:`accepts` and maybe :meth:`convert`."""

    @property
    def text(self) -> str:
        """The rule in words: it completes "``key`` must be ..."."""
        raise NotImplementedError

    def accepts(self, value: Any) -> bool:
        """True when ``value`` (as loaded from TOML or a variable) follows the rule."""
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """The typed value of an accepted raw value (durations, tuples, floats)."""
        return value


def _n(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _bounds(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" within [{_n(lo)}, {_n(hi)}]"
    if lo is not None:
        return f" >= {_n(lo)}"
    if hi is not None:
        return f" <= {_n(hi)}"
    return ""


@dataclass(frozen=True, slots=True)
class Int(Rule):
    """An integer (never a boolean) within optional inclusive bounds."""

    lo: int | None = None
    hi: int | None = None

    @property
    @override
    def text(self) -> str:
        return "an integer" + _bounds(self.lo, self.hi)

    @override
    def accepts(self, value: Any) -> bool:
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)


@dataclass(frozen=True, slots=True)
class Num(Rule):
    """A number (int or float, never a boolean or NaN) within optional inclusive bounds."""

    lo: float | None = None
    hi: float | None = None

    @property
    @override
    def text(self) -> str:
        return "a number" + _bounds(self.lo, self.hi)

    @override
    def accepts(self, value: Any) -> bool:
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)

    @override
    def convert(self, value: Any) -> Any:
        return float(value)


@dataclass(frozen=True, slots=True)
class Bool(Rule):
    """``true`` or ``false`` (a string such as ``"maybe"`` is refused, never guessed)."""

    @property
    @override
    def text(self) -> str:
        return "a bool (true or false)"

    @override
    def accepts(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Text(Rule):
    """A string, at least ``min_len`` characters (``min_bytes`` UTF-8 bytes unless empty)."""

    min_len: int = 0
    min_bytes: int = 0

    @property
    @override
    def text(self) -> str:
        if self.min_bytes:
            return f"empty or a string of at least {self.min_bytes} bytes"
        return "a non-empty string" if self.min_len else "a string (quote it)"

    @override
    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str) or len(value) < self.min_len:
            return False
        return value == "" or len(value.encode()) >= self.min_bytes


@dataclass(frozen=True, slots=True)
class OneOf(Rule):
    """One of a few words."""

    choices: tuple[str, ...]

    @property
    @override
    def text(self) -> str:
        return "one of " + ", ".join(self.choices)

    @override
    def accepts(self, value: Any) -> bool:
        return value in self.choices


@dataclass(frozen=True, slots=True)
class Url(Rule):
    """Empty or a URL with one of ``schemes``; ``what`` says it in words."""

    schemes: tuple[str, ...]
    what: str

    @property
    @override
    def text(self) -> str:
        return self.what

    @override
    def accepts(self, value: Any) -> bool:
        if value == "":
            return True
        return isinstance(value, str) and urlsplit(value).scheme in self.schemes


@dataclass(frozen=True, slots=True)
class BrokerList(Rule):
    """Empty or a comma-separated list of ``host:port``."""

    @property
    @override
    def text(self) -> str:
        return "a comma-separated list of host:port"

    @override
    def accepts(self, value: Any) -> bool:
        if value == "":
            return True
        if not isinstance(value, str):
            return False
        for broker in value.split(","):
            host, sep, port = broker.strip().rpartition(":")
            if not (sep and host and port.isdigit()):
                return False
        return True


@dataclass(frozen=True, slots=True)
class Duration(Rule):
    """A duration such as ``60s``, ``10min`` or ``1h`` (``positive``: above zero)."""

    positive: bool = True

    @property
    @override
    def text(self) -> str:
        kind = "a positive duration" if self.positive else "a duration"
        return f"{kind} such as 60s, 10min or 1h"

    @override
    def accepts(self, value: Any) -> bool:
        try:
            parsed = parse_duration(value)
        except (ValueError, TypeError, AttributeError, OverflowError):
            return False
        return not self.positive or parsed > timedelta(0)

    @override
    def convert(self, value: Any) -> Any:
        return parse_duration(value)


@dataclass(frozen=True, slots=True)
class StrList(Rule):
    """A list of strings, each checked by ``item`` when given."""

    what: str = "a list of strings"
    item: Callable[[str], bool] | None = None

    @property
    @override
    def text(self) -> str:
        return self.what

    @override
    def accepts(self, value: Any) -> bool:
        if not isinstance(value, list | tuple):
            return False
        if not all(isinstance(v, str) for v in value):
            return False
        return self.item is None or all(self.item(v) for v in value)

    @override
    def convert(self, value: Any) -> Any:
        return tuple(value)


@dataclass(frozen=True, slots=True)
class Table(Rule):
    """A TOML table (``{KEY = ...}``); ``convert`` gives it its type."""

    what: str
    make: Callable[[Mapping[str, Any]], Any] = dict

    @property
    @override
    def text(self) -> str:
        return self.what

    @override
    def accepts(self, value: Any) -> bool:
        return isinstance(value, Mapping)

    @override
    def convert(self, value: Any) -> Any:
        return self.make(value)


@dataclass(frozen=True, slots=True)
class Check(Rule):
    """Any other rule: a predicate, its words and an optional conversion."""

    predicate: Callable[[Any], bool]
    what: str
    to: Callable[[Any], Any] | None = None

    @property
    @override
    def text(self) -> str:
        return self.what

    @override
    def accepts(self, value: Any) -> bool:
        return self.predicate(value)

    @override
    def convert(self, value: Any) -> Any:
        return value if self.to is None else self.to(value)
