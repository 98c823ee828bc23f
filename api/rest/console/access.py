"""How the console plugs into the REST server's authentication.

Console pages accept the API's credentials (``x-api-key``, Bearer JWT) and, for browsers, the
session cookie of :mod:`api.rest.console.session`: only on ``/console`` paths, so the JSON API
never authenticates by cookie (and so needs no CSRF defence). A browser (``Accept: text/html``)
without credentials is sent to the log-in page; any other client gets the API's 401.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.types import HTTPResponseBodyEvent, HTTPResponseStartEvent, Scope, Send

from api.rest.console.session import COOKIE_NAME, ConsoleSession, SessionStore
from api.rest.resources import resources_of
from api.service.auth import BOOTSTRAP_SUBJECT

__all__ = [
    "CONSOLE_PREFIX",
    "CONSOLE_PUBLIC",
    "cookie_of",
    "is_console",
    "remember_session",
    "send_login_redirect",
    "session_of",
    "sessions_of",
    "still_valid",
    "wants_html",
]

CONSOLE_PREFIX = "/console"
#: Console paths open to anyone: the log-in form and the vendored static files.
CONSOLE_PUBLIC = ("/console/login", "/console/static/")
_STATE = "llmopt_console"


def is_console(path: str) -> bool:
    """Whether ``path`` is a console page (where the session cookie counts)."""
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


def sessions_of(app: Litestar) -> SessionStore:
    """The app's session store (built on first use over the service layer's cache)."""
    found = getattr(app.state, "console_sessions", None)
    if found is None:
        api = app.state.settings.api
        found = SessionStore(
            resources_of(app).cache, api.console_secret, api.console_session_ttl.total_seconds()
        )
        app.state.console_sessions = found
    assert isinstance(found, SessionStore)
    return found


def cookie_of(scope: Scope) -> str | None:
    """The console cookie of a request, if it sent one."""
    for key, value in scope.get("headers", ()):
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                name, _, found = part.strip().partition("=")
                if name == COOKIE_NAME and found:
                    return found
    return None


async def still_valid(app: Litestar, session: ConsoleSession) -> bool:
    """Whether the key a session was opened with is still active (a revocation ends it).

    The bootstrap admin key is configuration: valid while the settings still name one.
    """
    kind, _, key_id = session.subject.partition(":")
    if session.subject == BOOTSTRAP_SUBJECT:
        return bool(app.state.settings.api.bootstrap_admin_key)
    if kind != "key" or not key_id.isdigit():
        return False
    found = await asyncio.to_thread(resources_of(app).api_keys.active, int(key_id))
    return found is not None and found.role in session.roles


def remember_session(scope: Scope, session: ConsoleSession) -> None:
    """Note that this request was authenticated by ``session`` (forms must then carry CSRF)."""
    scope.setdefault("state", {})[_STATE] = session


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ConsoleSession | None:
    """The session that authenticated this request (``None``: an API key or JWT header)."""
    found = connection.scope.get("state", {}).get(_STATE)
    return found if isinstance(found, ConsoleSession) else None


def wants_html(scope: Scope) -> bool:
    """Whether the client asked for a web page (a browser navigating)."""
    for key, value in scope.get("headers", ()):
        if key == b"accept":
            return b"text/html" in value
    return False


async def send_login_redirect(scope: Scope, send: Send) -> None:
    """Answer 303 to the log-in page, remembering where the browser wanted to go."""
    target = scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    if query:
        target += "?" + query
    location = f"{CONSOLE_PREFIX}/login?next={quote(target, safe='')}"
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 303,
        "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
    }
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": b"", "more_body": False}
    await send(start)
    await send(body)
