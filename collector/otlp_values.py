"""OTLP attribute values (``AnyValue``) as plain Python values, and ids as hex strings."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

__all__ = ["attributes_of", "plain_value"]


def plain_value(value: AnyValue) -> Any:
    """The Python value of an OTLP ``AnyValue`` (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


_SCALARS = frozenset(("string_value", "bool_value", "int_value", "double_value"))


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    """OTLP key/value pairs as a dict (a repeated key keeps its last value)."""
    out: dict[str, Any] = {}
    for kv in pairs:
        value = kv.value
        kind = value.WhichOneof("value")
        # Scalars (nearly every attribute) inline; the rest as plain_value says.
        out[kv.key] = getattr(value, kind) if kind in _SCALARS else plain_value(value)
    return out
