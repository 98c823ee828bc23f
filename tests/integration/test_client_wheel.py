"""``llmopt-client`` installs alone and its README quick start works against the REST API.

The wheel is built from client/, installed into a fresh virtual environment (none of the
server's dependencies come along), and the README's first example runs there as an
application would, against the real REST app; its call and feedback arrive in Kafka.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from api.rest.app import create_app
from tests.integration.test_collector import read_topic
from tests.unit.api.rest_support import ADMIN_KEY, migrated_database, rest_settings, running_server
from tests.wheels import ROOT, build_wheel, fresh_venv

pytestmark = pytest.mark.integration
SERVER_ONLY = ("bytewax", "sqlalchemy", "litestar", "confluent_kafka", "polars", "grpc")


def _quick_start() -> str:
    readme = (ROOT / "client" / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", readme, re.S)[0]


def test_the_client_wheel_installs_alone_and_its_quick_start_runs(
    tmp_path: Path, redis_url: str, kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    wheel = build_wheel(ROOT / "client", tmp_path)
    python = fresh_venv(tmp_path / "venv", wheel)
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [python, "-c", probe, "llmopt_client", "httpx", "msgspec", *SERVER_ONLY],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert json.loads(found.replace("'", '"')) == ["llmopt_client", "httpx", "msgspec"]

    app = f"quick-{uuid.uuid4().hex[:8]}"
    code = (
        _quick_start()
        .replace('"shop"', repr(app))
        .replace('api_key="..."', f"api_key={ADMIN_KEY!r}")
    )
    assert "http://127.0.0.1:8080" in code
    with migrated_database() as url:
        settings = rest_settings(url, redis_url, kafka_bootstrap=kafka_bootstrap, topics=topics)
        with running_server(create_app(settings)) as base:
            httpx.put(
                f"{base}/api/v1/config/{app}",
                json={"tasks": {"classify": {"model": "gpt-4.1-nano"}}},
                headers={"x-api-key": ADMIN_KEY},
                timeout=30,
            ).raise_for_status()
            script = tmp_path / "quick_start.py"
            script.write_text(
                code.replace("http://127.0.0.1:8080", base).replace(
                    "route = llmopt.route", "llmopt.wait_for_config(60)\nroute = llmopt.route"
                )
            )
            run = subprocess.run(
                [python, script], capture_output=True, text=True, timeout=300, check=False
            )
            assert run.returncode == 0, run.stderr
    events = [json.loads(v) for _, v, _ in read_topic(kafka_bootstrap, topics["telemetry"], 2)]
    call = next(e for e in events if e["kind"] == "llm_call")
    feedback = next(e for e in events if e["kind"] == "feedback")
    assert (call["app"], call["task"], call["model"], call["variant"]) == (
        app, "classify", "gpt-4.1-nano", "baseline",
    )  # fmt: skip
    assert (call["config_version"], call["input_tokens"], call["output_tokens"]) == (1, 120, 8)
    assert (feedback["request_id"], feedback["quality"]) == ("req-42", 1.0)
