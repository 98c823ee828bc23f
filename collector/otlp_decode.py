"""OTLP/HTTP request bodies → ``ExportTraceServiceRequest``, and responses back.

Protobuf (``application/x-protobuf``) and the OTLP JSON encoding (``application/json``: ids as
hex strings, 64-bit integers as strings or numbers, enums as numbers, lowerCamelCase or
snake_case field names), optionally gzip-compressed (``Content-Encoding: gzip``).
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from core.errors import ValidationError

__all__ = [
    "JSON",
    "PROTOBUF",
    "decode_body",
    "decompress",
    "encode_response",
    "media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")


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
        raise ValidationError(f"body larger than {limit} bytes (collector.max_request_bytes)")
    return data


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP JSON carries ids as hex; protobuf's JSON mapping expects base64 bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str):
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError as exc:
                    raise ValidationError(f"{key} {value!r} is not a hex id") from exc
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def decode_body(data: bytes, kind: str) -> ExportTraceServiceRequest:
    """Parse an uncompressed body of media type ``kind``.

    Raises:
        ValidationError: The bytes are not an ``ExportTraceServiceRequest``.
    """
    request = ExportTraceServiceRequest()
    if kind == JSON:
        try:
            tree = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"body is not JSON: {exc}") from exc
        if not isinstance(tree, dict):
            raise ValidationError("body is not an OTLP JSON object")
        _hex_ids_to_base64(tree)
        try:
            json_format.ParseDict(tree, request, ignore_unknown_fields=True)
        except json_format.ParseError as exc:
            raise ValidationError(f"body is not OTLP JSON: {exc}") from exc
        return request
    try:
        request.ParseFromString(data)
    except DecodeError as exc:
        raise ValidationError(f"body is not an OTLP protobuf message: {exc}") from exc
    return request


def encode_response(response: ExportTraceServiceResponse, kind: str) -> bytes:
    """Encode a response in the request's media type (OTLP JSON uses lowerCamelCase)."""
    if kind == JSON:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return response.SerializeToString()


def gzip_bytes(data: bytes) -> bytes:
    """Gzip ``data`` (clients and tests)."""
    return gzip.compress(data)
