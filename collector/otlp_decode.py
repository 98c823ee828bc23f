"""OTLP/HTTP request bodies → ``ExportTraceServiceRequest``, and responses back.

Protobuf (``application/x-protobuf``) and the OTLP JSON encoding (``application/json``: ids as
hex strings, 64-bit integers as strings or numbers, enums as numbers, lowerCamelCase or
snake_case field names), optionally gzip-compressed (``Content-Encoding: gzip``).

Limits (every one a :class:`core.errors.ValidationError` with a reason, never a crash): a body
larger than ``collector.max_request_bytes`` before or after decompression
(:class:`BodyTooLargeError`, HTTP 413: inflating stops at the limit, so a decompression bomb
costs at most that much memory); JSON nested deeper than :data:`MAX_JSON_DEPTH` arrays and
objects; messages nested deeper than protobuf's own limit of 100 (binary and JSON alike).
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from core.errors import ValidationError

__all__ = [
    "JSON",
    "MAX_JSON_DEPTH",
    "PROTOBUF",
    "BodyTooLargeError",
    "decode_body",
    "decode_message",
    "decompress",
    "encode_response",
    "media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = frozenset(
    ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
)
#: Deepest JSON nesting (arrays and objects) accepted: a span attribute holding kvlists 30
#: deep is ~130 levels; protobuf refuses messages deeper than 100 anyway.
MAX_JSON_DEPTH = 160


class BodyTooLargeError(ValidationError):
    """A body beyond ``collector.max_request_bytes``, before or after decompression (HTTP 413)."""


def media_type(content_type: str | None) -> str:
    """``application/json`` or ``application/x-protobuf`` (the default) from a Content-Type."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    return JSON if kind == JSON else PROTOBUF


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip), refusing bodies above ``limit`` bytes.

    Raises:
        ValidationError: Unknown encoding, corrupt gzip, or a body beyond the limit.
    """
    kind = (encoding or "identity").strip().lower()
    if kind in ("", "identity"):
        data = body
    elif kind == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ValidationError(f"body is not valid gzip: {exc}") from exc
        if not inflater.eof and len(data) <= limit:
            raise ValidationError("body is not valid gzip: truncated stream")
    else:
        raise ValidationError(f"unsupported Content-Encoding {encoding!r} (identity or gzip)")
    if len(data) > limit:
        raise BodyTooLargeError(
            f"body larger than {limit} bytes (collector.max_request_bytes)"
            + (" once decompressed" if kind == "gzip" else "")
        )
    return data


def _hex_ids_to_base64(tree: Any) -> None:
    """OTLP JSON carries ids as hex; protobuf's JSON mapping expects base64 bytes.

    Walks without recursion and refuses nesting deeper than :data:`MAX_JSON_DEPTH`.
    """
    stack: list[tuple[Any, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValidationError(f"body nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    try:
                        node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                    except ValueError as exc:
                        raise ValidationError(f"{key} {value[:64]!r} is not a hex id") from exc
                elif isinstance(value, dict | list):
                    stack.append((value, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node if isinstance(item, dict | list))


M = TypeVar("M", bound=Message)


def decode_body(data: bytes, kind: str) -> ExportTraceServiceRequest:
    """Parse an uncompressed body of media type ``kind``.

    Raises:
        ValidationError: The bytes are not an ``ExportTraceServiceRequest``.
    """
    return decode_message(data, kind, ExportTraceServiceRequest)


def decode_message(data: bytes, kind: str, message: type[M]) -> M:
    """Parse an uncompressed body of media type ``kind`` as ``message`` (any OTLP request).

    Raises:
        ValidationError: The bytes are not a ``message``.
    """
    request = message()
    if kind == JSON:
        try:
            tree = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"body is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise ValidationError(f"body nested deeper than {MAX_JSON_DEPTH} levels") from exc
        if not isinstance(tree, dict):
            raise ValidationError("body is not an OTLP JSON object")
        _hex_ids_to_base64(tree)
        try:
            json_format.ParseDict(tree, request, ignore_unknown_fields=True)
        except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
            raise ValidationError(f"body is not OTLP JSON: {_short(exc)}") from exc
        return request
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError) as exc:
        raise ValidationError(f"body is not an OTLP protobuf message: {_short(exc)}") from exc
    return request


def _short(exc: BaseException, limit: int = 500) -> str:
    """An error's message cut to ``limit`` characters (protobuf repeats a deep path)."""
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "..."


def encode_response(response: ExportTraceServiceResponse | Message, kind: str) -> bytes:
    """Encode a response in the request's media type (OTLP JSON uses lowerCamelCase)."""
    if kind == JSON:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` (clients and tests)."""
    return gzip.compress(data)
