"""The console over HTTP (Litestar's test client, real PostgreSQL and Redis): log-in, the
session cookie, CSRF, roles, and that the JSON API never authenticates by cookie."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.rest.app import create_app
from tests.unit.api.rest_support import migrated_database, rest_settings, role_keys

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html"}


@pytest.fixture(scope="module")
def console(redis_url: str) -> Iterator[tuple[TestClient[Any], dict[str, str]]]:
    with migrated_database() as url:
        keys = role_keys(url)
        with TestClient(create_app(rest_settings(url, redis_url))) as client:
            yield client, keys


def _log_in(client: TestClient[Any], key: str, target: str = "/console/rollouts") -> str:
    response = client.post(
        "/console/login", data={"api_key": key, "next": target}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == target
    cookie = response.headers["set-cookie"]
    assert re.fullmatch(
        r"llmopt_console=[\w-]+\.[\w-]+; Path=/console; Max-Age=28800; Secure; HttpOnly; "
        r"SameSite=Strict",
        cookie,
    ), cookie
    return cookie.split(";")[0]


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def test_a_browser_without_a_session_is_sent_to_the_login_form(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, _ = console
    response = client.get("/console/insights?app=a", headers=HTML, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/console/login?next=%2Fconsole%2Finsights%3Fapp%3Da",
    )
    assert client.get("/console/insights").status_code == 401  # not a browser: the API's answer
    form = client.get("/console/login?next=/console/insights")
    assert form.status_code == 200
    assert '<label for="api_key">API key</label>' in form.text
    assert 'value="/console/insights"' in form.text
    assert client.get("/console/static/console.js").status_code == 200


def test_a_wrong_key_goes_back_to_the_form_and_next_stays_on_the_console(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = console
    bad = client.post("/console/login", data={"api_key": "nope"}, follow_redirects=False)
    assert bad.status_code == 303
    assert "set-cookie" not in bad.headers
    assert bad.headers["location"].startswith("/console/login?next=%2Fconsole&error=")
    elsewhere = client.post(
        "/console/login",
        data={"api_key": keys["viewer"], "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert elsewhere.headers["location"] == "/console"


def test_session_pages_roles_csrf_and_logout(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = console
    viewer = _log_in(client, keys["viewer"])
    page = client.get("/console/rollouts", headers={"cookie": viewer})
    assert page.status_code == 200
    assert ">viewer</span>" in page.text
    token = _csrf(page.text)
    forged = client.post(
        "/console/rollouts/some-id/approve",
        headers={"cookie": viewer},
        data={"csrf_token": token},
    )
    assert forged.status_code == 403
    assert "recommendations.act" in forged.json()["detail"]

    operator = _log_in(client, keys["operator"])
    page = client.get("/console/", headers={"cookie": operator})
    token = _csrf(page.text)
    for sent in ({}, {"csrf_token": "wrong"}, {"csrf_token": _csrf(client.get(
        "/console/", headers={"cookie": viewer}).text)}):  # fmt: skip
        refused = client.post(
            "/console/rollouts/some-id/reject", headers={"cookie": operator}, data=sent
        )
        assert refused.status_code == 403, sent
        assert "CSRF" in refused.json()["detail"]
    # with the token, the action reaches the service (an unknown decision: back with the error)
    tried = client.post(
        "/console/rollouts/some-id/reject",
        headers={"cookie": operator},
        data={"csrf_token": token, "reason": "no"},
        follow_redirects=False,
    )
    assert tried.status_code == 303
    assert tried.headers["location"].startswith("/console/rollouts/some-id?error=")

    # the cookie counts only on the console, never on the JSON API
    assert client.get("/api/v1/deployments/", headers={"cookie": operator}).status_code == 401

    out = client.post(
        "/console/logout", headers={"cookie": operator}, data={"csrf_token": token},
        follow_redirects=False,
    )  # fmt: skip
    assert out.status_code == 303
    assert out.headers["set-cookie"].startswith("llmopt_console=; Path=/console; Max-Age=0;")
    assert client.get("/console/", headers={"cookie": operator}).status_code == 401
    tampered = viewer[:-2] + ("AA" if not viewer.endswith("AA") else "BB")
    assert client.get("/console/", headers={"cookie": tampered}).status_code == 401
    assert client.get("/console/", headers={"cookie": viewer}).status_code == 200


def test_api_keys_work_on_console_pages_without_a_session(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = console
    page = client.get("/console/insights", headers={"x-api-key": keys["viewer"]})
    assert page.status_code == 200
    assert "Anomalies and drifts" in page.text
    assert 'name="csrf_token"' not in page.text  # no session, no form token (and no log-out)
    assert client.get("/console/", headers={"x-api-key": keys["ingest"]}).status_code == 403


def test_a_browser_sees_errors_as_a_page_and_other_clients_as_problems(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = console
    key = {"x-api-key": keys["viewer"]}
    page = client.get("/console/rollouts/no-such-decision", headers={**key, **HTML})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>404 Not Found</h1>" in page.text
    assert "no decision &#x27;no-such-decision&#x27;" in page.text
    problem = client.get("/console/rollouts/no-such-decision", headers=key)
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"


def test_revoking_the_key_ends_its_sessions(
    console: tuple[TestClient[Any], dict[str, str]],
) -> None:
    client, keys = console
    admin = {"x-api-key": keys["admin"]}
    created = client.post(
        "/api/v1/admin/keys", headers=admin, json={"name": "gone", "role": "viewer"}
    )
    cookie = _log_in(client, created.json()["key"])
    assert client.get("/console/rollouts", headers={"cookie": cookie}).status_code == 200
    key_id = created.json()["info"]["id"]
    assert client.delete(f"/api/v1/admin/keys/{key_id}", headers=admin).status_code == 200
    assert client.get("/console/rollouts", headers={"cookie": cookie}).status_code == 401
    admin_cookie = _log_in(client, keys["admin"])  # the bootstrap key: configuration
    assert client.get("/console/rollouts", headers={"cookie": admin_cookie}).status_code == 200
