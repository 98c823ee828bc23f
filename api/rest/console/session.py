"""Console log-in sessions: a signed, HttpOnly, ``SameSite=Strict`` cookie and a CSRF token.

Logging in with an API key creates a server-side session in the shared cache (Redis, or the
in-process cache without it) under a random 256-bit id; the cookie carries ``id.signature``
(HMAC-SHA256 over the id with ``api.console_secret``, or a random key kept in the shared cache
when that is empty), so a forged or altered cookie is refused before the cache is asked. The
session holds the caller's subject and roles (as verified at log-in) and a random CSRF token
that every console form posts back; a session ends at ``api.console_session_ttl`` or on log-out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Callable

import msgspec

from api.service.auth import Principal
from storage.cache import Cache

__all__ = [
    "COOKIE_NAME",
    "ConsoleSession",
    "SessionStore",
    "cookie_header",
    "csrf_matches",
    "sign",
    "unsign",
]

COOKIE_NAME = "llmopt_console"
_KEY_CACHE_KEY = "llmopt:console:signing-key"
_SESSION_PREFIX = "llmopt:console:session:"


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """Who logged in (as verified then), and the token their forms post back."""

    subject: str
    roles: tuple[str, ...]
    name: str
    csrf: str

    def principal(self) -> Principal:
        """The caller this session stands for (authenticated by an API key at log-in)."""
        return Principal(subject=self.subject, roles=self.roles, via="api_key", name=self.name)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign(session_id: str, key: bytes) -> str:
    """The cookie value for ``session_id``: ``id.signature``."""
    mac = hmac.new(key, session_id.encode("ascii"), hashlib.sha256).digest()
    return f"{session_id}.{_b64(mac)}"


def unsign(cookie: str, key: bytes) -> str | None:
    """The session id in a cookie value, or ``None`` when its signature does not match."""
    session_id, dot, _ = cookie.partition(".")
    if not dot or not session_id or len(cookie) > 256 or not session_id.isascii():
        return None
    return session_id if hmac.compare_digest(sign(session_id, key), cookie) else None


def csrf_matches(session: ConsoleSession, posted: str | None) -> bool:
    """Whether a form's token is the session's (constant time)."""
    return bool(posted) and hmac.compare_digest(session.csrf.encode(), str(posted).encode())


def cookie_header(value: str, max_age_s: int) -> str:
    """A ``Set-Cookie`` value: Secure, HttpOnly, SameSite=Strict, for the console's paths.

    ``max_age_s`` of 0 deletes the cookie.
    """
    return (
        f"{COOKIE_NAME}={value}; Path=/console; Max-Age={max_age_s}; "
        "Secure; HttpOnly; SameSite=Strict"
    )


class SessionStore:
    """Creates, finds and ends console sessions in the shared cache.

    Args:
        cache: The shared cache (sessions must be seen by every worker and replica).
        secret: ``api.console_secret``; empty: a random key stored once in the shared cache.
        ttl_s: ``api.console_session_ttl`` in seconds.
        token: Source of random bytes (tests may inject one).
    """

    def __init__(
        self,
        cache: Cache,
        secret: str,
        ttl_s: float,
        *,
        token: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._cache = cache
        self._key = secret.encode() if secret else None
        self._ttl = ttl_s
        self._token = token

    @property
    def ttl_s(self) -> int:
        """Lifetime of a session in whole seconds (the cookie's ``Max-Age``)."""
        return int(self._ttl)

    async def _signing_key(self) -> bytes:
        if self._key is None:
            found = await self._cache.get(_KEY_CACHE_KEY)
            if found is None:
                await self._cache.set(_KEY_CACHE_KEY, self._token(32))
                # whatever is stored now wins (another worker may have written at the same time)
                found = await self._cache.get(_KEY_CACHE_KEY)
            if found is None:
                raise RuntimeError("the shared cache lost the console signing key")
            self._key = found
        return self._key

    async def create(self, principal: Principal) -> tuple[str, ConsoleSession]:
        """A new session for ``principal``: the cookie value and the session."""
        session_id = _b64(self._token(32))
        session = ConsoleSession(
            subject=principal.subject,
            roles=principal.roles,
            name=principal.name,
            csrf=_b64(self._token(32)),
        )
        await self._cache.set(
            _SESSION_PREFIX + _digest(session_id), msgspec.json.encode(session), self._ttl
        )
        return sign(session_id, await self._signing_key()), session

    async def find(self, cookie: str) -> ConsoleSession | None:
        """The live session a cookie names, or ``None`` (bad signature, ended, expired)."""
        session_id = unsign(cookie, await self._signing_key())
        if session_id is None:
            return None
        raw = await self._cache.get(_SESSION_PREFIX + _digest(session_id))
        if raw is None:
            return None
        try:
            return msgspec.json.decode(raw, type=ConsoleSession)
        except msgspec.DecodeError:
            return None

    async def end(self, cookie: str) -> None:
        """End the session a cookie names (log-out); nothing when it names none."""
        session_id = unsign(cookie, await self._signing_key())
        if session_id is not None:
            # the shared cache has no delete: an empty value for a second ends it
            await self._cache.set(_SESSION_PREFIX + _digest(session_id), b"", 1.0)


def _digest(session_id: str) -> str:
    """The cache key part of a session id (the id itself is never stored)."""
    return hashlib.sha256(session_id.encode("ascii")).hexdigest()
