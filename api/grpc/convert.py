"""Between the service layer's msgspec structs and the ``llmopt.v1`` messages.

The messages spell their fields as the JSON contract does, so a struct becomes a message through
its JSON form (:func:`to_message`), and a request message becomes plain JSON data through
:func:`to_builtins` (integers stay integers, times become RFC 3339 strings).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from core.errors import ValidationError
from proto.llmopt.v1 import common_pb2

__all__ = [
    "event_json",
    "optional",
    "required",
    "struct_dict",
    "time_of",
    "to_builtins",
    "to_message",
]

M = TypeVar("M", bound=Message)


def to_message(obj: Any, cls: type[M]) -> M:
    """``obj`` (a msgspec struct or plain data) as a message of type ``cls``."""
    message = cls()
    json_format.ParseDict(msgspec.to_builtins(obj), message, ignore_unknown_fields=True)
    return message


def _plain(value: Any) -> Any:
    """JSON numbers of a Struct are doubles; whole ones become ints again."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _single(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is None:
        return value
    name = field.message_type.full_name
    if name == "google.protobuf.Timestamp":
        return value.ToJsonString()
    if name.startswith("google.protobuf."):
        return _plain(json_format.MessageToDict(value))
    return to_builtins(value)


def to_builtins(message: Message) -> dict[str, Any]:
    """The fields ``message`` carries (set optionals, non-default scalars) as plain data."""
    out: dict[str, Any] = {}
    for field, value in message.ListFields():
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            value_field = entry.fields_by_name["value"]
            out[field.name] = {k: _single(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_single(field, v) for v in value]
        else:
            out[field.name] = _single(field, value)
    return out


def event_json(event: common_pb2.TelemetryEvent) -> bytes:
    """A telemetry event as the JSON object of CONTRACT.md §2."""
    return msgspec.json.encode(to_builtins(event))


def optional(message: Message, field: str, default: Any = None) -> Any:
    """The value of an ``optional`` field, ``default`` when it is absent (an explicit 0 is kept)."""
    return getattr(message, field) if message.HasField(field) else default


def time_of(message: Message, field: str) -> datetime | None:
    """A ``Timestamp`` field as an aware UTC datetime, ``None`` when absent."""
    if not message.HasField(field):
        return None
    stamp = getattr(message, field)
    try:
        return stamp.ToDatetime(tzinfo=UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError) as exc:
        raise ValidationError(f"{field} is not a valid time: {exc}") from exc


def struct_dict(message: Message) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a plain dict (whole numbers as ints)."""
    found = _plain(json_format.MessageToDict(message))
    return found if isinstance(found, dict) else {}


def required(value: str, field: str) -> str:
    """``value`` unless it is empty (then a :class:`FieldError` naming ``field``)."""
    if not value:
        from api.grpc.errors import FieldError

        raise FieldError(field, "is required")
    return value
