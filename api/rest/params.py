"""The integer parameters of every route, bounded in one way.

Every row id and config version is a PostgreSQL ``integer`` (migration 0001), so a path or query
integer is accepted only in ``1 .. 2**31-1``: beyond that it could name nothing, and the
database (or SQLite's driver) would refuse it with an error that says nothing useful. A value
outside its bounds, or one that is not an integer at all, is a 400 problem whose ``errors`` list
names the parameter and the bound; page sizes have their own smaller maximum.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import Parameter

from api.service.bounds import DB_INT_MAX

__all__ = [
    "DB_INT_MAX",
    "BeforeId",
    "BodyVersion",
    "FromVersion",
    "RowId",
    "ToVersion",
    "Version",
    "page_limit",
]

RowId = Annotated[int, Parameter(ge=1, le=DB_INT_MAX, description="a row id (1 .. 2^31-1)")]
Version = Annotated[
    int, Parameter(ge=1, le=DB_INT_MAX, description="a config version (1 .. 2^31-1)")
]
BeforeId = Annotated[
    int | None,
    Parameter(ge=1, le=DB_INT_MAX, description="only ids/versions below this (1 .. 2^31-1)"),
]
FromVersion = Annotated[
    int, Parameter(query="from", ge=1, le=DB_INT_MAX, description="older version (1 .. 2^31-1)")
]
ToVersion = Annotated[
    int, Parameter(query="to", ge=1, le=DB_INT_MAX, description="newer version (1 .. 2^31-1)")
]
#: A config version in a request body (msgspec), with the same bounds.
BodyVersion = Annotated[int, msgspec.Meta(ge=1, le=DB_INT_MAX)]


def page_limit(maximum: int) -> object:
    """The ``limit`` query parameter: ``1 .. maximum`` items per page."""
    return Parameter(ge=1, le=maximum, description=f"items per page (1 .. {maximum})")
