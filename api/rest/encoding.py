"""Pre-compressed response bodies for hot routes that serve the same bytes many times.

The app's compression middleware creates a brotli or gzip compressor for every request whose
client accepts one, before it knows the body's size, and compresses each body anew. A route
that answers with cached bytes (``GET /api/v1/config/{app}``) sets ``opt={SKIP_COMPRESSION:
True}`` and answers with :func:`encoded_response`: bodies under :data:`MIN_COMPRESS_BYTES` go out
as they are, larger ones are compressed once per distinct body (best quality, since it is paid
once) and the compressed bytes are reused while that body is current.
"""

from __future__ import annotations

import gzip
from typing import Any

import brotli  # type: ignore[import-untyped]
from litestar import Response

__all__ = [
    "MIN_COMPRESS_BYTES",
    "SKIP_COMPRESSION",
    "compressed",
    "encoded_response",
    "negotiate",
]

#: Smaller bodies are sent uncompressed (here and by the app's compression middleware).
MIN_COMPRESS_BYTES = 512
#: The route ``opt`` key that bypasses the compression middleware.
SKIP_COMPRESSION = "skip_compression"

_MAX_REMEMBERED = 1024
_compressed: dict[tuple[str, bytes], bytes] = {}


def negotiate(accept_encoding: str) -> str | None:
    """``br`` or ``gzip`` as the middleware would choose from ``Accept-Encoding``, else None."""
    if "br" in accept_encoding:
        return "br"
    if "gzip" in accept_encoding:
        return "gzip"
    return None


def compressed(encoding: str, raw: bytes) -> bytes:
    """``raw`` in ``br`` or ``gzip``, compressed once per distinct body."""
    found = _compressed.get((encoding, raw))
    if found is None:
        found = (
            bytes(brotli.compress(raw, quality=11)) if encoding == "br" else gzip.compress(raw, 9)
        )
        if len(_compressed) >= _MAX_REMEMBERED:
            _compressed.clear()
        _compressed[(encoding, raw)] = found
    return found


def encoded_response(
    raw: bytes,
    accept_encoding: str,
    media_type: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    """A 200 with ``raw`` compressed as the client accepts, from a per-body memo."""
    encoding = negotiate(accept_encoding) if len(raw) >= MIN_COMPRESS_BYTES else None
    if encoding is None:
        return Response(raw, media_type=media_type, headers=headers)
    return Response(
        compressed(encoding, raw),
        media_type=media_type,
        headers={**(headers or {}), "content-encoding": encoding, "vary": "Accept-Encoding"},
    )
