"""The range of every id and version the service layer accepts (REST and gRPC alike).

Every row id and config version is a PostgreSQL ``integer`` (migration 0001). A value outside
``1 .. 2**31-1`` can name nothing, and the database (or SQLite's driver) would refuse it with
an error that says nothing useful, so it is a :class:`core.errors.ValidationError` naming the
field and the range (HTTP 400, gRPC ``INVALID_ARGUMENT``). REST also declares the range in its
parameters (``api.rest.params``), so the OpenAPI schema shows it.
"""

from __future__ import annotations

from core.errors import ValidationError

__all__ = ["DB_INT_MAX", "check_id"]

#: The largest value of a PostgreSQL ``integer`` column: every id and version.
DB_INT_MAX = 2**31 - 1


def check_id(name: str, value: int | None) -> None:
    """Refuse an id or version outside ``1 .. DB_INT_MAX`` (``None`` passes: not given).

    Raises:
        ValidationError: Naming ``name`` and the range.
    """
    if value is not None and not 1 <= value <= DB_INT_MAX:
        raise ValidationError(f"{name} must be between 1 and {DB_INT_MAX}, not {value}")
