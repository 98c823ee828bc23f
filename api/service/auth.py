"""Who is calling: API keys (``x-api-key``) and short-lived JWTs (``Authorization: Bearer``).

Keys are looked up by digest and remembered for a few seconds per replica (revocation through
this service takes effect at once on this replica, within the cache TTL on the others). Tokens
are HS256 (``api.jwt_secret``) or RS256 (``api.jwt_private_key_path``/``jwt_public_key_path``);
only the configured algorithm is accepted, so ``alg=none`` and algorithm confusion fail, and
``exp``, ``iat`` and ``sub`` are required.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import jwt
import msgspec
from sqlalchemy.exc import InterfaceError, OperationalError

from core.errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    StorageUnavailableError,
)
from core.settings import ApiSettings
from storage.api_keys import ROLES, ApiKeyRepository

__all__ = ["Authenticator", "IssuedToken", "Principal"]

BOOTSTRAP_SUBJECT = "key:bootstrap"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller: a stable subject (rate limits, audit) and its roles."""

    subject: str
    roles: tuple[str, ...]
    via: Literal["api_key", "jwt"]
    name: str = ""


class IssuedToken(msgspec.Struct, frozen=True, kw_only=True):
    """A JWT for ``Authorization: Bearer`` and when it expires."""

    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    subject: str
    roles: tuple[str, ...]


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigurationError(
            f"invalid settings: {what} {path!r} cannot be read: {exc}"
        ) from exc


class Authenticator:
    """Verifies API keys and JWTs and issues tokens in exchange for keys."""

    def __init__(
        self,
        keys: ApiKeyRepository,
        settings: ApiSettings,
        *,
        key_cache_ttl: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._settings = settings
        self._ttl = key_cache_ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, Principal]] = {}
        # The last verified principal of each key: serves while the database is away.
        self._verified: dict[str, Principal] = {}
        self._alg = settings.jwt_algorithm
        self._sign_key: str | None
        self._verify_key: str | None
        if self._alg == "RS256":
            self._verify_key = _read(settings.jwt_public_key_path, "api.jwt_public_key_path")
            self._sign_key = (
                _read(settings.jwt_private_key_path, "api.jwt_private_key_path")
                if settings.jwt_private_key_path
                else None
            )
        else:
            self._sign_key = self._verify_key = settings.jwt_secret or None

    @property
    def issues_tokens(self) -> bool:
        """Whether this replica can sign tokens (a secret or private key is configured)."""
        return self._sign_key is not None

    def authenticate_key(self, key: str) -> Principal:
        """The caller behind an API key (may query the database; call it off the event loop).

        While the database cannot be reached, a key this replica verified before is still
        accepted with the roles it had (a revocation needs the database, so none can be missed).

        Raises:
            AuthenticationError: Unknown or revoked key.
        """
        if not key:
            raise AuthenticationError("missing credentials: send x-api-key or a Bearer token")
        bootstrap = self._settings.bootstrap_admin_key
        if bootstrap and hmac.compare_digest(key.encode(), bootstrap.encode()):
            # Configuration, not data: works even while the database is down.
            return Principal(subject=BOOTSTRAP_SUBJECT, roles=("admin",), via="api_key")
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            info = self._keys.lookup(key)
        except (OperationalError, InterfaceError, StorageUnavailableError):
            known = self._verified.get(key)
            if known is None:
                raise
            return known
        if info is None:
            self._cache.pop(key, None)
            self._verified.pop(key, None)
            raise AuthenticationError("unknown or revoked API key")
        principal = Principal(
            subject=f"key:{info.id}", roles=(info.role,), via="api_key", name=info.name
        )
        if len(self._cache) > 10_000:
            self._cache.clear()
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._cache[key] = (now + self._ttl, principal)
        self._verified[key] = principal
        return principal

    def cached_key(self, key: str) -> Principal | None:
        """The principal of ``key`` when known without a database query (hot path)."""
        bootstrap = self._settings.bootstrap_admin_key
        if bootstrap and hmac.compare_digest(key.encode(), bootstrap.encode()):
            return Principal(subject=BOOTSTRAP_SUBJECT, roles=("admin",), via="api_key")
        cached = self._cache.get(key)
        return cached[1] if cached is not None and cached[0] > time.monotonic() else None

    def forget_keys(self) -> None:
        """Drop remembered keys (after a revocation): the next use of each asks the database."""
        self._cache.clear()

    def authenticate_token(self, token: str) -> Principal:
        """The caller behind a JWT.

        Raises:
            AuthenticationError: Tokens disabled, bad signature, wrong or ``none`` algorithm,
                expired, not yet valid, wrong issuer, or missing ``sub``/``roles``.
        """
        if self._verify_key is None:
            raise AuthenticationError("bearer tokens are not enabled on this server")
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self._alg:
                raise AuthenticationError(f"token algorithm must be {self._alg}")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self._alg],
                issuer=self._settings.jwt_issuer,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        roles = claims.get("roles")
        if (
            not isinstance(roles, list)
            or not roles
            or not all(isinstance(r, str) and r in ROLES for r in roles)
        ):
            raise AuthenticationError("invalid token: roles must be a non-empty list of roles")
        return Principal(subject=str(claims["sub"]), roles=tuple(roles), via="jwt")

    def issue_token(self, principal: Principal) -> IssuedToken:
        """A token with the caller's subject and roles, valid for ``api.jwt_ttl``.

        Raises:
            PermissionDeniedError: The caller used a token (only API keys are exchanged).
            NotFoundError: Token exchange is off on this server (no secret or private key to
                sign with): a state of its configuration, not an outage (HTTP 404).
        """
        if principal.via != "api_key":
            raise PermissionDeniedError("only an API key can be exchanged for a token")
        if self._sign_key is None:
            raise NotFoundError(
                "token exchange is not enabled on this server (neither api.jwt_secret nor "
                "api.jwt_private_key_path is set): authenticate with the x-api-key header"
            )
        now = int(self._clock())
        ttl = int(self._settings.jwt_ttl.total_seconds())
        claims = {
            "sub": principal.subject,
            "roles": list(principal.roles),
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "iss": self._settings.jwt_issuer,
        }
        token = jwt.encode(claims, self._sign_key, algorithm=self._alg)
        return IssuedToken(
            access_token=token, expires_in=ttl, subject=principal.subject, roles=principal.roles
        )
