"""JWT and API-key attacks, and rate limits shared by two app instances on one Redis."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from litestar.testing import TestClient

from api.rest.app import create_app
from tests.unit.api.rest_support import (
    ADMIN_KEY,
    JWT_SECRET,
    migrated_database,
    rest_settings,
    role_keys,
)

pytestmark = pytest.mark.integration

STATS = "/api/v1/admin/stats"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with migrated_database() as url:
        yield url


@pytest.fixture
def client(database: str, redis_url: str) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(rest_settings(database, redis_url))) as c:
        yield c


def _claims(**over: Any) -> dict[str, Any]:
    # Tokens of the parametrised cases are made when the suite is collected, which can be many
    # minutes before they are sent: they stay valid for a day unless a case says otherwise.
    now = int(time.time())
    claims = {"sub": "someone", "roles": ["admin"], "iat": now, "exp": now + 86400, "iss": "llmopt"}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_key_is_exchanged_for_a_token_that_carries_its_role(
    client: TestClient[Any], database: str
) -> None:
    keys = role_keys(database)
    issued = client.post("/api/v1/auth/token", headers={"x-api-key": keys["viewer"]}).json()
    assert issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 900
    claims = jwt.decode(issued["access_token"], JWT_SECRET, algorithms=["HS256"], issuer="llmopt")
    assert claims["roles"] == ["viewer"]
    assert claims["exp"] - claims["iat"] == 900
    headers = _bearer(issued["access_token"])
    assert client.get("/api/v1/optimize/recommendations", headers=headers).status_code == 200
    assert client.get(STATS, headers=headers).status_code == 403
    again = client.post("/api/v1/auth/token", headers=headers)
    assert again.status_code == 403
    assert "only an API key" in again.json()["detail"]


@pytest.mark.parametrize(
    ("token", "fragment"),
    [
        (jwt.encode(_claims(), key=None, algorithm="none"), "algorithm must be HS256"),
        (jwt.encode(_claims(), JWT_SECRET + "x", algorithm="HS512"), "algorithm must be HS256"),
        (jwt.encode(_claims(), "another-secret-of-enough-length-0123456789"), "Signature"),
        (jwt.encode(_claims(exp=int(time.time()) - 5), JWT_SECRET), "expired"),
        (jwt.encode(_claims(sub=None), JWT_SECRET), "sub"),
        (jwt.encode(_claims(exp=None), JWT_SECRET), "exp"),
        (jwt.encode(_claims(iss="evil"), JWT_SECRET), "issuer"),
        (jwt.encode(_claims(roles=["root"]), JWT_SECRET), "roles"),
        (jwt.encode(_claims(roles="admin"), JWT_SECRET), "roles"),
        ("not.a.jwt", "invalid token"),
    ],
    ids=[
        "alg-none",
        "wrong-alg",
        "bad-signature",
        "expired",
        "no-sub",
        "no-exp",
        "wrong-issuer",
        "unknown-role",
        "roles-not-a-list",
        "garbage",
    ],
)
def test_forged_tokens_are_401(client: TestClient[Any], token: str, fragment: str) -> None:
    response = client.get(STATS, headers=_bearer(token))
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert fragment in response.json()["detail"]


def test_a_tampered_payload_breaks_the_signature(client: TestClient[Any]) -> None:
    good = jwt.encode(_claims(roles=["viewer"]), JWT_SECRET)
    header, _, signature = good.split(".")
    forged_body = jwt.encode(_claims(roles=["admin"]), JWT_SECRET).split(".")[1]
    assert client.get(STATS, headers=_bearer(good)).status_code == 403
    forged = client.get(STATS, headers=_bearer(f"{header}.{forged_body}.{signature}"))
    assert forged.status_code == 401


def test_rs256_accepts_its_key_pair_and_refuses_algorithm_confusion(
    tmp_path: Path, database: str, redis_url: str
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "private.pem").write_bytes(private_pem)
    (tmp_path / "public.pem").write_bytes(public_pem)
    settings = rest_settings(
        database,
        redis_url,
        jwt_algorithm="RS256",
        jwt_secret="",
        jwt_private_key_path=str(tmp_path / "private.pem"),
        jwt_public_key_path=str(tmp_path / "public.pem"),
    )
    with TestClient(create_app(settings)) as c:
        issued = c.post("/api/v1/auth/token", headers={"x-api-key": ADMIN_KEY}).json()
        assert jwt.get_unverified_header(issued["access_token"])["alg"] == "RS256"
        assert c.get(STATS, headers=_bearer(issued["access_token"])).status_code == 200
        # The classic confusion: HS256 signed with the public key as the HMAC secret.
        # (PyJWT refuses to sign that, so it is built by hand.)
        header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
        body = issued["access_token"].split(".")[1].encode()
        mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
        token = (header + b"." + body + b"." + jwt.utils.base64url_encode(mac)).decode()
        refused = c.get(STATS, headers=_bearer(token))
        assert refused.status_code == 401
        assert "algorithm must be RS256" in refused.json()["detail"]


def test_revoked_and_unknown_keys_are_401(client: TestClient[Any]) -> None:
    admin = {"x-api-key": ADMIN_KEY}
    created = client.post(
        "/api/v1/admin/keys", json={"name": "tmp", "role": "viewer"}, headers=admin
    )
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["info"]["id"]
    assert client.get("/api/v1/deployments", headers={"x-api-key": key}).status_code == 200
    listed = client.get("/api/v1/admin/keys", headers=admin).json()
    assert key not in str(listed)
    assert [k["name"] for k in listed if k["id"] == key_id] == ["tmp"]
    revoked = client.delete(f"/api/v1/admin/keys/{key_id}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    after = client.get("/api/v1/deployments", headers={"x-api-key": key})
    assert after.status_code == 401
    assert after.json()["detail"] == "unknown or revoked API key"
    assert client.get("/api/v1/deployments", headers={"x-api-key": "nope"}).status_code == 401


def test_one_limit_is_shared_by_two_replicas_on_one_redis(database: str, redis_url: str) -> None:
    settings = rest_settings(database, redis_url, rate_limit__per_s=0.5, rate_limit__burst=4)
    admin = {"x-api-key": ADMIN_KEY}
    with (
        TestClient(create_app(settings)) as a,
        TestClient(create_app(settings)) as b,
    ):
        answers = [(a if i % 2 == 0 else b).get(STATS, headers=admin) for i in range(6)]
        assert [r.status_code for r in answers] == [200, 200, 200, 200, 429, 429]
        assert [r.headers["RateLimit-Remaining"] for r in answers] == ["3", "2", "1", "0", "0", "0"]
        assert all(r.headers["RateLimit-Limit"] == "4" for r in answers)
        refused = answers[4]
        assert refused.headers["Retry-After"] == "2"
        assert refused.headers["content-type"] == "application/problem+json"
        assert "rate limit" in refused.json()["detail"]
        # Another identity has its own bucket; the limit is per caller, not global.
        token = a.post("/api/v1/auth/token", headers=admin)
        assert token.status_code == 429  # same key, same bucket
        other = role_keys(database)["viewer"]
        assert b.get("/api/v1/deployments", headers={"x-api-key": other}).status_code == 200


def test_anonymous_and_failed_logins_count_per_ip(database: str, redis_url: str) -> None:
    settings = rest_settings(
        database, redis_url, rate_limit__anonymous_per_s=0.5, rate_limit__anonymous_burst=3
    )
    with TestClient(create_app(settings)) as c:
        statuses = [c.get("/health/live").status_code for _ in range(2)]
        statuses.append(c.get(STATS, headers={"x-api-key": "guess"}).status_code)
        statuses.append(c.get(STATS, headers={"x-api-key": "guess-2"}).status_code)
        assert statuses == [200, 200, 401, 429]
        # An authenticated caller is limited by its own identity, not the IP.
        assert c.get(STATS, headers={"x-api-key": ADMIN_KEY}).status_code == 200
