from __future__ import annotations

import asyncio
import itertools

from api.rest.console.session import (
    ConsoleSession,
    SessionStore,
    cookie_header,
    csrf_matches,
    sign,
    unsign,
)
from api.service.auth import Principal
from storage.cache import MemoryCache

KEY = b"k" * 32
OPERATOR = Principal(subject="key:7", roles=("operator",), via="api_key", name="ops")


def test_signature_round_trip_and_tampering() -> None:
    cookie = sign("abc", KEY)
    assert unsign(cookie, KEY) == "abc"
    assert unsign(cookie, b"x" * 32) is None
    assert unsign("abd" + cookie[3:], KEY) is None
    assert unsign(cookie + "A", KEY) is None
    assert unsign("abc", KEY) is None
    assert unsign("." + cookie.split(".")[1], KEY) is None


def test_cookie_is_secure_httponly_strict_and_scoped_to_the_console() -> None:
    assert cookie_header("v", 60) == (
        "llmopt_console=v; Path=/console; Max-Age=60; Secure; HttpOnly; SameSite=Strict"
    )


def test_csrf_matches_only_the_sessions_token() -> None:
    session = ConsoleSession(subject="s", roles=("viewer",), name="", csrf="tok")
    assert csrf_matches(session, "tok")
    assert not csrf_matches(session, "tok2")
    assert not csrf_matches(session, "")
    assert not csrf_matches(session, None)


def _counter() -> object:
    counter = itertools.count()
    return lambda n: bytes([next(counter) % 256]) * n


def test_store_creates_finds_and_ends_sessions() -> None:
    async def run() -> None:
        cache = MemoryCache()
        store = SessionStore(cache, "s" * 32, 3600, token=_counter())  # type: ignore[arg-type]
        cookie, session = await store.create(OPERATOR)
        assert session.principal() == OPERATOR
        assert (await store.find(cookie)) == session
        other_cookie, other = await store.create(OPERATOR)
        assert other.csrf != session.csrf
        assert other_cookie != cookie
        # another replica with the same secret finds it; a different secret does not
        assert (await SessionStore(cache, "s" * 32, 3600).find(cookie)) == session
        assert (await SessionStore(cache, "t" * 32, 3600).find(cookie)) is None
        await store.end(cookie)
        assert (await store.find(cookie)) is None
        assert (await store.find(other_cookie)) == other
        assert (await store.find("garbage")) is None

    asyncio.run(run())


def test_without_a_secret_the_key_is_shared_through_the_cache() -> None:
    async def run() -> None:
        cache = MemoryCache()
        first, second = SessionStore(cache, "", 60), SessionStore(cache, "", 60)
        cookie, session = await first.create(OPERATOR)
        assert (await second.find(cookie)) == session  # another worker on the same cache
        assert (await SessionStore(MemoryCache(), "", 60).find(cookie)) is None

    asyncio.run(run())


def test_sessions_expire_with_the_cache_ttl() -> None:
    async def run() -> None:
        cache = MemoryCache()
        store = SessionStore(cache, "s" * 32, 0.05)
        cookie, _ = await store.create(OPERATOR)
        deadline = asyncio.get_running_loop().time() + 30
        while await store.find(cookie) is not None:  # the cache drops it after its TTL
            assert asyncio.get_running_loop().time() < deadline, "session never expired"
            await asyncio.sleep(0.02)

    asyncio.run(run())
