"""The operator console in a real browser against the running optimizer.

``python -m orchestrator`` with embedded defaults and ``decisions.require_approval`` naming
``model_selection``; ``llmopt simulate`` drives a shop whose cheaper model is as good as the
incumbent until the optimizer proposes the switch (and waits for a person). Then, in Debian's
Chromium driven headless by Playwright: an operator logs in with an API key, opens the rollout,
approves it and sees the canary version in the config history; more simulated traffic gives the
canary its verdicts, which the rollout page explains check by check; a viewer sees the same
pages without the buttons, and a forged POST of theirs is refused. Screenshots of every page go
to ``var/test-artifacts/console/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator import Fleet, KafkaSink, RestConfigSource, Simulation
from simulator.profiles import load_scenario
from storage.kafka import free_port
from tests.e2e.browser import chromium, shot, shot_path
from tests.e2e.optimizer_process import Optimizer, base_env

pytestmark = pytest.mark.e2e

ADMIN = "console-e2e-admin-key"
SIM_START = timedelta(minutes=70)  # simulated time runs from 70 min ago for ...
PHASE_ONE = timedelta(minutes=20)  # ... 20 min: the optimizer proposes and waits; then ...
# ... the approved canary serves from the minute after the approval (the deployment starts at
# the wall-clock time of the approval, and the judge looks only at periods after it)
PHASE_TWO = timedelta(minutes=20)  # at most: it ends once quality has been tested, after ...
MIN_PHASE_TWO = timedelta(minutes=5)  # ... at least this long (the incident below is at 2-4 min)
PERIOD = timedelta(minutes=1)


def _scenario(
    path: Path, start: datetime, seed: int, incidents: list[dict[str, Any]], rate: float = 30.0
) -> Path:
    path.write_text(
        json.dumps(
            {
                "name": path.stem,
                "seed": seed,
                "start": start.isoformat(),
                "incidents": incidents,
                "tasks": [
                    {
                        "app": "shop",
                        "task": "classify",
                        "model": "gpt-4o",
                        "rate_per_s": rate,
                        "models": {"gpt-4o": {}, "gpt-4o-mini": {"latency_median_ms": 450.0}},
                    }
                ],
            }
        )
    )
    return path


def _simulate(opt: Optimizer, tmp: Path, scenario: Path, duration: timedelta) -> None:
    done = subprocess.run(
        [
            sys.executable, "-m", "orchestrator.cli", "simulate",
            "--scenario", str(scenario), "--duration", f"{int(duration.total_seconds())}s",
            "--speed", "60", "--target", "kafka",
            "--bootstrap", f"127.0.0.1:{opt.env['LLMOPT_KAFKA__EMBEDDED_PORT']}",
            "--api-url", opt.base, "--api-key", ADMIN,
        ],
        cwd=tmp, env=opt.env, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()[-3000:]


def _api(opt: Optimizer, method: str, path: str, **kw: Any) -> Any:
    response = httpx.request(
        method, opt.base + path, headers={"x-api-key": ADMIN}, timeout=30, **kw
    )
    response.raise_for_status()
    return response.json()


def _key(opt: Optimizer, role: str) -> tuple[str, str]:
    """A new API key of ``role`` and the subject it acts as (``key:<id>``, as audited)."""
    created = _api(
        opt, "POST", "/api/v1/admin/keys", json={"name": f"console-{role}", "role": role}
    )
    return str(created["key"]), f"key:{created['info']['id']}"


def _log_in(page: Any, base: str, target: str, key: str) -> None:
    page.goto(base + target)
    assert "/console/login" in page.url  # no session yet: the log-in form, then back
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(base + target)


def _max_end(items: list[dict[str, Any]]) -> datetime | None:
    return max((datetime.fromisoformat(i["window_end"]) for i in items), default=None)


def _paced_phase(opt: Optimizer, scenario: Any, deployment_id: str, duration: timedelta) -> None:
    """The fleet in-process, waiting at each period's close until the loop has answered it.

    After each minute of simulated time (plus a tick, so the watermark has passed its end) the
    fleet waits until the processor has stored that period's windows, the judge has given the
    deployment its verdict for it (or the deployment is over), and the REST API serves the
    config version the actuator wrote last: the next calls then see what the loop decided,
    however slow the machine is.
    """
    start = scenario.start
    deadline_s = 240.0  # per period: generous, the machine may be busy

    def wait_for_loop(now: datetime) -> None:
        if (now - start) % timedelta(minutes=1) != timedelta(seconds=10) or now - start < PERIOD:
            return
        due = now - timedelta(seconds=10)
        since = (due - PERIOD).isoformat()

        def answered() -> bool:
            windows = _api(
                opt, "GET", "/api/v1/metrics/summary", params={"app": "shop", "since": since}
            )["windows"]
            ends = _max_end(windows)
            if ends is None or ends < due:
                return False
            found = _api(opt, "GET", f"/api/v1/deployments/{deployment_id}")
            judged = _max_end(found["verdicts"])
            if found["status"] not in ("promoted", "rolled_back") and (
                judged is None or judged < due
            ):
                return False
            served = _api(opt, "GET", "/api/v1/config/shop")["version"]
            return bool(served == _api(opt, "GET", "/api/v1/config/shop/versions")[0]["version"])

        opt.poll(f"the loop's answer to the period ending {due}", answered, timeout=deadline_s)

    def judged() -> bool:
        """Whether a verdict has tested quality (the canary had enough scored calls)."""
        found = _api(opt, "GET", f"/api/v1/deployments/{deployment_id}")
        return any(
            c["metric"] == "quality" and c["statistic"] is not None
            for v in found["verdicts"]
            for c in v["checks"]
        )

    bootstrap = f"127.0.0.1:{opt.env['LLMOPT_KAFKA__EMBEDDED_PORT']}"
    sink = KafkaSink(bootstrap, "llm.telemetry")
    source = RestConfigSource(opt.base, ADMIN, poll_interval=0.0)
    try:
        sim = Simulation(Fleet(scenario, start=start), source, sink, pace=wait_for_loop)
        sim.run_until(start + duration, stop=lambda now: now - start >= MIN_PHASE_TWO and judged())
    finally:
        sink.close()


@pytest.fixture
def optimizer(tmp_path: Path) -> Any:
    env = {
        **base_env(tmp_path, ADMIN),
        "LLMOPT_KAFKA__EMBEDDED_PORT": str(free_port()),
        "LLMOPT_DECISIONS__CANDIDATES": '@json ["gpt-4o-mini"]',
        "LLMOPT_DECISIONS__REQUIRE_APPROVAL": '@json ["model_selection"]',
        "LLMOPT_CANARY__MIN_STAGE_DURATION": "2min",
        "LLMOPT_API__CONFIG_CACHE_TTL": "1s",
    }
    opt = Optimizer(tmp_path, env)
    try:
        opt.poll("health", lambda: httpx.get(opt.base + "/health", timeout=2).status_code == 200)
        yield opt
    finally:
        opt.stop()


@pytest.mark.timeout(1800)  # two simulations, one paced period by period, on a busy machine
def test_operator_approves_in_the_console_and_a_viewer_cannot(
    optimizer: Optimizer, tmp_path: Path
) -> None:
    opt, base = optimizer, optimizer.base
    start = (datetime.now(UTC) - SIM_START).replace(second=0, microsecond=0)
    _simulate(opt, tmp_path, _scenario(tmp_path / "one.json", start, 3, []), PHASE_ONE)

    def proposed() -> Any:
        page = _api(opt, "GET", "/api/v1/optimize/recommendations", params={"status": "proposed"})
        return page["items"][0] if page["items"] else None

    decision = opt.poll("a proposed decision waiting for approval", proposed, timeout=300)
    assert (decision["strategy"], decision["action"]["model"]) == ("model_selection", "gpt-4o-mini")
    versions_before = _api(opt, "GET", "/api/v1/config/shop/versions")
    (operator, operator_subject), (viewer, _) = _key(opt, "operator"), _key(opt, "viewer")
    rollout = f"/console/rollouts/{decision['id']}"

    with chromium(tmp_path / "operator-profile") as browser:
        page = browser.new_page()
        _log_in(page, base, rollout, operator)
        cookie = next(c for c in browser.cookies() if c["name"] == "llmopt_console")
        assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
        assert page.get_by_test_id("decision-status").inner_text() == "proposed"
        assert page.get_by_test_id("role").inner_text() == "operator"
        shot(page, "01-rollout-proposed")

        # CSRF: a POST with this session's cookie but without its token changes nothing
        forged = browser.request.post(
            base + rollout + "/reject", form={"csrf_token": "not-the-token"}, max_redirects=0
        )
        assert forged.status == 403, forged.text()
        assert "CSRF" in forged.json()["detail"]

        page.get_by_role("button", name="Approve").click()
        page.wait_for_url(f"{base}{rollout}?done=approve")
        assert page.get_by_test_id("decision-status").inner_text() == "canary"
        assert page.get_by_test_id("deployment-status").inner_text() == "running"
        assert page.get_by_role("button", name="Approve").count() == 0
        assert page.get_by_role("button", name="Roll back").count() == 1
        shot(page, "02-rollout-approved")

        # the approval is audited once, by the operator's key, as through the API
        audit = _api(
            opt,
            "GET",
            "/api/v1/admin/audit",
            params={"resource": "decision", "resource_id": decision["id"]},
        )
        assert [(a["action"], a["actor"]) for a in audit] == [
            ("decision.approve", operator_subject)
        ]

        # the canary is a new config version, shown in the task page's history with its diff
        page.get_by_role("link", name="shop / classify").click()
        page.wait_for_url(f"{base}/console/apps/shop/tasks/classify")
        versions_after = _api(opt, "GET", "/api/v1/config/shop/versions")
        newest = versions_after[0]["version"]
        assert newest == versions_before[0]["version"] + 1
        entry = page.locator(f"#v{newest}")
        assert "approved" in entry.inner_text() or decision["id"] in entry.inner_text()
        assert "classify.canary" in entry.inner_text()
        assert "gpt-4o-mini" in entry.inner_text()
        assert f"(version {newest})" in page.locator("#config-h").inner_text()
        shot(page, "03-task-history")

    # the canary serves; the judge gives its verdicts period by period (paced: see _paced_phase)
    second = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    incident = [{"model": "gpt-4o", "at": "2min", "until": "4min", "latency_factor": 4.0}]
    deployment_id = _api(opt, "GET", f"/api/v1/optimize/recommendations/{decision['id']}")[
        "deployment"
    ]["id"]
    scenario = load_scenario(_scenario(tmp_path / "two.json", second, 4, incident, rate=60.0))
    _paced_phase(opt, scenario, deployment_id, PHASE_TWO)
    deployment = _api(opt, "GET", f"/api/v1/deployments/{deployment_id}")

    with chromium(tmp_path / "operator-profile-2") as browser:
        page = browser.new_page()
        _log_in(page, base, rollout, operator)
        # each stage's latest verdict is on the page, every stored check a row of its table
        tables = page.locator("table.checks")
        stages = sorted({v["stage"] for v in deployment["verdicts"]}, reverse=True)
        assert tables.count() == len(stages)
        judged_quality = False
        for n, stage in enumerate(stages):
            latest = max(
                (v for v in deployment["verdicts"] if v["stage"] == stage),
                key=lambda v: (v["window_end"], v["created_at"]),
            )
            stored = [c for c in latest["checks"] if c["metric"] != "expected_time_to_verdict_h"]
            rows = tables.nth(n).locator("tbody tr")
            assert rows.locator("th").all_inner_texts() == [c["metric"] for c in stored]
            for k, check in enumerate(stored):
                cells = rows.nth(k).locator("td").all_inner_texts()
                assert cells[-3] == f"{check['baseline_n']} / {check['canary_n']}"
                assert (
                    cells[-1] == {True: "pass", False: "fail", None: "undecided"}[check["passed"]]
                )
                has_band = check["lower"] is not None or check["upper"] is not None
                drawn = rows.nth(k).locator("svg.band rect").count()
                assert drawn == (1 if has_band else 0), check
                judged_quality |= check["metric"] == "quality" and check["statistic"] is not None
        # the canary had at least 100 scored calls at some weight: quality was tested
        assert judged_quality, deployment["verdicts"]
        assert page.locator("ul.sentences li").first.inner_text().strip() != ""
        assert page.get_by_test_id("eta").inner_text() != ""
        shot(page, "04-rollout-verdicts")
        page.locator("section.stage").first.screenshot(path=str(shot_path("04b-latest-stage")))

        page.goto(base + "/console/?sort=cost_per_call&order=desc")
        page.keyboard.press("Tab")  # the first stop is the skip link, visible when focused
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_label("App or task").fill("no-such-task")  # htmx swaps the table in place
        page.wait_for_selector("text=0 of 1 tasks.")
        assert "q=no-such-task" in page.url
        assert "sort=cost_per_call" in page.url
        page.goto(base + "/console/?sort=cost_per_call&order=desc")
        row = page.locator("table.data tbody tr", has_text="classify")
        assert "gpt-4o" in row.inner_text()
        now = _api(opt, "GET", f"/api/v1/deployments/{deployment_id}")
        if now["status"] in ("running", "paused", "watching"):  # the open rollout and its stage
            assert f"{now['status']}, stage {now['stage']}" in row.inner_text()
        shot(page, "05-fleet")

        page.goto(base + "/console/apps/shop/tasks/classify")
        page.wait_for_selector("#chart-count .uplot")  # uPlot drew the series
        assert page.locator(".uplot").count() == 5
        events = page.get_by_test_id("events").inner_text()
        status = _api(opt, "GET", f"/api/v1/optimize/recommendations/{decision['id']}")
        assert f"decision model_selection → gpt-4o-mini ({status['decision']['status']})" in events
        assert "canary started" in events
        assert "stage 0 at 1%" in events
        assert f"config v{newest}" in events
        shot(page, "06-task-series")

        page.goto(base + "/console/insights")
        shot(page, "07-insights")

    with chromium(tmp_path / "viewer-profile") as browser:
        page = browser.new_page()
        _log_in(page, base, rollout, viewer)
        assert page.get_by_test_id("role").inner_text() == "viewer"
        for name in ("Approve", "Reject", "Roll back"):
            assert page.get_by_role("button", name=name).count() == 0
        assert "can see this decision but not act" in page.inner_text("main")
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        assert token  # the viewer's own, valid token: the role, not the token, is refused
        forged = browser.request.post(
            base + rollout + "/rollback", form={"csrf_token": token, "reason": "x"},
            max_redirects=0,
        )  # fmt: skip
        assert forged.status == 403, forged.text()
        assert "recommendations.act" in forged.json()["detail"]
        shot(page, "08-rollout-viewer")

    after = _api(opt, "GET", f"/api/v1/deployments/{deployment_id}")
    assert after["status"] in ("running", "watching", "promoted")  # the viewer changed nothing
