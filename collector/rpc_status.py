"""``google.rpc.Status`` with ``RetryInfo``, encoded by hand (no googleapis protos needed).

OTLP says a refused export carries a ``Status`` (HTTP body, or the gRPC
``grpc-status-details-bin`` trailer) whose details may hold a ``google.rpc.RetryInfo``; the
OpenTelemetry exporters read the retry delay from it.
"""

from __future__ import annotations

import json
import math

from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration

__all__ = ["RETRY_INFO_TYPE", "status_bytes", "status_json"]

RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _retry_info(retry_after: float) -> bytes:
    seconds = math.ceil(retry_after)
    return _field(1, Duration(seconds=seconds).SerializeToString())


def status_bytes(code: int, message: str, retry_after: float | None = None) -> bytes:
    """A serialized ``google.rpc.Status`` (gRPC ``code``), with ``RetryInfo`` when given."""
    out = b""
    if code:
        out += _varint(1 << 3 | 0) + _varint(code)
    if message:
        out += _field(2, message.encode())
    if retry_after is not None:
        detail = AnyMessage(type_url=RETRY_INFO_TYPE, value=_retry_info(retry_after))
        out += _field(3, detail.SerializeToString())
    return out


def status_json(code: int, message: str, retry_after: float | None = None) -> bytes:
    """The same ``Status`` in the protobuf JSON mapping."""
    body: dict[str, object] = {"code": code, "message": message}
    if retry_after is not None:
        body["details"] = [{"@type": RETRY_INFO_TYPE, "retryDelay": f"{math.ceil(retry_after)}s"}]
    return json.dumps(body).encode()
