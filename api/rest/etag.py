"""Entity tags of the config read: ``ETag`` on the answer, ``If-None-Match`` answered 304.

An application polls ``GET /api/v1/config/{app}`` every few seconds; while its config is
unchanged, a poll that sends the tag it holds gets ``304 Not Modified`` with no body. The tag is
weak (``W/"…"``: the same config in gzip, brotli or plain is the same entity) and is a hash of
the config's JSON bytes, so every replica gives the same config the same tag.
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["etag_of", "not_modified"]

_MAX_REMEMBERED = 4096
_tags: dict[bytes, str] = {}


def etag_of(raw: bytes) -> str:
    """The weak entity tag of the config JSON ``raw`` (memoised per distinct body)."""
    found = _tags.get(raw)
    if found is None:
        found = f'W/"{blake2b(raw, digest_size=12).hexdigest()}"'
        if len(_tags) >= _MAX_REMEMBERED:
            _tags.clear()
        _tags[raw] = found
    return found


def not_modified(if_none_match: str, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, RFC 9110 §13.1.2) or is ``*``."""
    if not if_none_match:
        return False
    opaque = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        tag = candidate.strip()
        if tag == "*" or tag.removeprefix("W/") == opaque:
            return True
    return False
