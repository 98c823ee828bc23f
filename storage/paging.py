"""Keyset pagination: an opaque cursor of (time, id) for lists ordered newest first."""

from __future__ import annotations

import base64
from datetime import datetime

from core.errors import ValidationError

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(at: datetime, key: str) -> str:
    """An opaque cursor that continues a list after the item (``at``, ``key``)."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{key}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of a cursor made by :func:`encode_cursor`.

    Raises:
        ValidationError: When the cursor was not made by :func:`encode_cursor`.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, key = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError(f"invalid cursor {cursor!r}") from exc
    if parsed.tzinfo is None:
        raise ValidationError(f"invalid cursor {cursor!r}")
    return parsed, key
