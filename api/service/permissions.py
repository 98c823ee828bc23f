"""The one permission matrix: which role may do what, for REST routes and gRPC methods alike.

Every REST route names one permission (``opt={"permission": ...}``) and every gRPC method maps to
one; a guard allows the call when one of the caller's roles holds it. A route without a
permission is refused for everyone, so nothing can be added without a decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

from storage.api_keys import ROLES, Role

__all__ = ["PERMISSIONS", "Permission", "allowed", "roles_for"]

Permission = Literal[
    "telemetry.write",
    "recommendations.read",
    "recommendations.analyze",
    "recommendations.act",
    "deployments.read",
    "config.read",
    "config.write",
    "metrics.read",
    "integrations.read",
    "integrations.write",
    "admin",
    "auth.token",
]

_ALL: frozenset[Role] = frozenset(ROLES)
_READERS: frozenset[Role] = frozenset({"admin", "operator", "viewer"})
_OPERATORS: frozenset[Role] = frozenset({"admin", "operator"})
_ADMIN: frozenset[Role] = frozenset({"admin"})

#: Permission → the roles that hold it. The table in docs/rest.md is this dict.
PERMISSIONS: dict[Permission, frozenset[Role]] = {
    "telemetry.write": frozenset({"admin", "operator", "ingest"}),
    "recommendations.read": _READERS,
    "recommendations.analyze": _OPERATORS,
    "recommendations.act": _OPERATORS,
    "deployments.read": _READERS,
    "config.read": _ALL,  # applications read their config with their ingest key
    "config.write": _OPERATORS,
    "metrics.read": _READERS,
    "integrations.read": _OPERATORS,
    "integrations.write": _ADMIN,
    "admin": _ADMIN,
    "auth.token": _ALL,
}
assert set(PERMISSIONS) == set(get_args(Permission))


def roles_for(permission: str) -> frozenset[Role]:
    """The roles holding ``permission`` (none for an unknown permission)."""
    return PERMISSIONS.get(permission, frozenset())  # type: ignore[call-overload, no-any-return]


def allowed(roles: Iterable[str], permission: str | None) -> bool:
    """Whether any of ``roles`` holds ``permission`` (``None``: nobody)."""
    if permission is None:
        return False
    holders = roles_for(permission)
    return any(r in holders for r in roles)
