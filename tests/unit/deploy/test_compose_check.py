"""``make compose-check``: deploy/ holds together without a Docker engine; breakage is caught."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).parents[3]
PROMTOOL = ROOT / ".tools" / "bin" / "promtool"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "compose_check", ROOT / "scripts" / "compose_check.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = _module()


@pytest.fixture
def deploy(tmp_path: Path) -> Path:
    if not PROMTOOL.exists():
        pytest.fail("promtool is missing: run `bash scripts/install-promtool.sh` (make test does)")
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy)
    (tmp_path / "pyproject.toml").touch()  # the build context (..) exists
    return copy


def test_the_repository_deploy_folder_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert check.main(["--promtool", str(PROMTOOL)]) == 0
    assert "compose-check: ok (0 problem(s))" in capsys.readouterr().out


def test_broken_compose_references_are_reported(deploy: Path) -> None:
    path = deploy / "docker-compose.yml"
    doc = yaml.safe_load(path.read_text())
    doc["services"]["optimizer"]["depends_on"]["zookeeper"] = {"condition": "service_healthy"}
    doc["services"]["redis"]["volumes"] = ["redis-cache:/data"]
    doc["services"]["redis"]["ports"] = ["8080:6379"]
    doc["services"]["grafana"]["networks"] = ["backend"]
    doc["services"]["processor-1"]["env_file"] = ["missing.env"]
    doc["services"]["processor-1"]["environment"]["BYTEWAX_ADDRESSES"] = "processor-0:2101"
    doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES PASSWORD}"
    path.write_text(yaml.safe_dump(doc))
    assert sorted(check.check_compose(deploy)) == sorted(
        [
            f"{path}: bad interpolation ${{POSTGRES PASSWORD}} in '${{POSTGRES PASSWORD}}'",
            "service processor-1: env_file missing.env does not exist",
            "service redis: volume 'redis-cache' is not declared",
            "service redis: host port 8080 is taken by optimizer",
            "service optimizer: depends on unknown service 'zookeeper'",
            "service grafana: network 'backend' is not declared",
            "service processor-1: BYTEWAX_ADDRESSES ['processor-0:2101'] != the processors",
            "service processor-1: its own address is not at its BYTEWAX_PROCESS_ID",
        ]
    )


def test_dashboards_and_alerts_may_only_read_exported_metrics(deploy: Path) -> None:
    known = check.exported_metrics()
    assert {"service_status", "service_restarts_total", "request_duration_seconds_bucket"} <= known
    assert {"llmopt_pipeline_consumer_lag", "llmopt_pipeline_cost_usd_total"} <= known
    assert check.check_grafana(deploy, known) == []
    file = deploy / "grafana" / "dashboards" / "pipeline.json"
    doc = json.loads(file.read_text())
    doc["panels"][1]["targets"][0]["expr"] = 'sum(rate(llm_events_total{app="x"}[5m]))'
    file.write_text(json.dumps(doc))
    assert check.check_grafana(deploy, known) == [
        "pipeline.json: query reads 'llm_events_total', which nothing exports"
    ]
    assert check.check_alert_metrics(deploy, known) == []


def test_prometheus_config_and_rules_go_through_promtool(deploy: Path) -> None:
    assert check.check_prometheus(deploy, PROMTOOL) == []
    rules = deploy / "prometheus" / "alerts.yml"
    rules.write_text(
        rules.read_text().replace("expr: service_status == 5", "expr: service_status ===")
    )
    problems = check.check_prometheus(deploy, PROMTOOL)
    assert len(problems) == 2  # check config loads the rules too
    assert all("promtool check" in p and "alerts.yml" in p for p in problems)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('service_status{service=~"$service"}', {"service_status"}),
        (
            "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))",
            {"request_duration_seconds_bucket"},
        ),
        (
            'sum by (app) (increase(a_total[1h])) > on() group_left() (max(b{period="daily"}) > 0)',
            {"a_total", "b"},
        ),
        ("rate(x_total[10m]) / clamp_min(rate(y_total[10m]), 1e-9) > 0.05", {"x_total", "y_total"}),
    ],
)
def test_promql_metric_names(expr: str, names: set[str]) -> None:
    assert check.promql_metrics(expr) == names
