"""The REST server as the orchestrator runs it: granian workers, h2c, h2 over TLS, graceful stop.

Each test starts :class:`orchestrator.services.RestService` (a server process with two granian
workers) on the real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.settings import Settings, updated
from orchestrator.services import RestService
from storage.kafka import free_port
from tests.unit.api.rest_support import ADMIN_KEY, rest_settings

pytestmark = pytest.mark.integration
ADMIN = {"x-api-key": ADMIN_KEY}
PROMTOOL = Path(__file__).parents[2] / ".tools" / "bin" / "promtool"


def _settings(database_url: str, redis_url: str, **api: Any) -> Settings:
    return rest_settings(database_url, redis_url, port=free_port(), workers=2, **api)


def _slow_body(sent: threading.Event, release: threading.Event) -> Iterator[bytes]:
    """A config change whose body arrives in two parts: the second once ``release`` is set."""
    text = json.dumps({"tasks": {"classify": {"model": "gpt-4o-mini"}}, "reason": "slow"})
    yield text[:12].encode()
    sent.set()  # the head and the first part are on the wire
    assert release.wait(30)
    yield text[12:].encode()


@pytest.mark.parametrize("http2", [True, False], ids=["h2c", "http1"])
def test_a_request_in_flight_completes_when_the_server_stops(
    fresh_database: Any, redis_url: str, http2: bool
) -> None:
    settings = _settings(fresh_database(), redis_url)
    base = f"http://127.0.0.1:{settings.api.port}"
    answers: list[Any] = []
    sent = threading.Event()
    release = threading.Event()

    def change() -> None:
        try:
            with httpx.Client(http1=not http2, http2=http2, timeout=20) as client:
                answers.append(
                    client.put(
                        base + "/api/v1/config/support",
                        content=_slow_body(sent, release),
                        headers={**ADMIN, "content-type": "application/json"},
                    )
                )
        except httpx.HTTPError as exc:
            answers.append(exc)

    async def scenario() -> bool:
        rest = RestService(settings)
        await rest.start()
        client = threading.Thread(target=change)
        client.start()
        assert await asyncio.to_thread(sent.wait, 10)
        await asyncio.sleep(0.2)  # the server has the head and the first body part
        stopping = asyncio.create_task(rest.stop())
        await asyncio.sleep(0.5)  # let the stop begin (a slow machine only weakens the check)
        waited = not stopping.done()  # the stop waits for the body still on its way
        release.set()
        await stopping
        await asyncio.to_thread(client.join, 20)
        return waited

    waited = asyncio.run(scenario())
    [answer] = answers
    assert isinstance(answer, httpx.Response), answer
    assert answer.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert answer.status_code == 200, answer.text
    assert answer.json()["tasks"]["classify"]["model"] == "gpt-4o-mini"
    assert waited
    with pytest.raises(httpx.ConnectError):
        httpx.get(base + "/health/live", timeout=2)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_h2c_plain_and_h2_over_tls_by_alpn(
    fresh_database: Any, redis_url: str, tmp_path: Path
) -> None:
    database = fresh_database()
    cert, key = _self_signed(tmp_path)
    plain = _settings(database, redis_url)
    tls = _settings(database, redis_url, tls_cert_path=str(cert), tls_key_path=str(key))

    async def scenario() -> None:
        for settings, base, verify in (
            (plain, f"http://127.0.0.1:{plain.api.port}", True),
            (tls, f"https://localhost:{tls.api.port}", ssl.create_default_context(cafile=cert)),
        ):
            rest = RestService(settings)
            await rest.start()
            try:
                async with httpx.AsyncClient(
                    http1=base.startswith("https"), http2=True, verify=verify
                ) as h2:
                    answer = await h2.get(base + "/api/v1/admin/stats", headers=ADMIN)
                    assert answer.http_version == "HTTP/2"
                    assert answer.status_code == 200
                    assert answer.headers["x-request-id"]
                async with httpx.AsyncClient(verify=verify) as http1:
                    answer = await http1.get(base + "/api/v1/config", headers=ADMIN)
                    assert answer.http_version == "HTTP/1.1"
                    assert answer.status_code == 200
            finally:
                await rest.stop()

    asyncio.run(scenario())


def test_reload_reaches_the_hook_and_new_settings_reach_every_worker(
    fresh_database: Any, redis_url: str
) -> None:
    settings = _settings(fresh_database(), redis_url)
    base = f"http://127.0.0.1:{settings.api.port}"
    reloads: list[str] = []

    async def scenario() -> set[str]:
        rest = RestService(settings, on_reload=lambda: reloads.append("reloaded"))
        await rest.start()
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                answer = await client.post("/api/v1/admin/reload", headers=ADMIN)
                assert answer.status_code == 202
                deadline = time.monotonic() + 120  # a guard only: a loaded machine is slow
                while not reloads and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                limits = updated(settings.api, rate_limit__burst=4321)
                await rest.reload(replace(settings, api=limits))
                seen: set[str] = set()
                deadline = time.monotonic() + 120  # workers are replaced one by one
                while time.monotonic() < deadline:
                    # new connections, so that both workers answer over time
                    async with httpx.AsyncClient(base_url=base) as fresh:
                        answers = [
                            await fresh.get("/api/v1/config", headers=ADMIN) for _ in range(5)
                        ]
                    seen = {a.headers["ratelimit-limit"] for a in answers}
                    if seen == {"4321"}:
                        break
                    await asyncio.sleep(0.2)
                return seen
        finally:
            await rest.stop()

    seen = asyncio.run(scenario())
    assert reloads == ["reloaded"]
    assert seen == {"4321"}


def test_metrics_sum_every_worker(fresh_database: Any, redis_url: str) -> None:
    settings = _settings(fresh_database(), redis_url)
    base = f"http://127.0.0.1:{settings.api.port}"

    def config_reads(text: str) -> float:
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("litestar_requests_total{")
            and 'path="/api/v1/config"' in line
            and 'method="GET"' in line
        )

    async def scenario() -> tuple[list[float], set[str], str]:
        rest = RestService(settings)
        await rest.start()
        try:
            for _ in range(40):  # a new connection each: the workers share them out
                async with httpx.AsyncClient(base_url=base) as client:
                    assert (await client.get("/api/v1/config", headers=ADMIN)).status_code == 200
            totals: list[float] = []
            workers: set[str] = set()
            for _ in range(6):
                async with httpx.AsyncClient(base_url=base) as client:
                    text = (await client.get("/metrics")).text
                totals.append(config_reads(text))
                workers |= {
                    line for line in text.splitlines() if line.startswith("llmopt_rest_workers ")
                }
            return totals, workers, text
        finally:
            await rest.stop()

    totals, workers, text = asyncio.run(scenario())
    assert totals == [40.0] * 6  # whichever worker answers the scrape
    assert workers == {"llmopt_rest_workers 2.0"}
    lint = subprocess.run(  # promtool from scripts/install-promtool.sh (make test)
        [str(PROMTOOL), "check", "metrics"], input=text, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
