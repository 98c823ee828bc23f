"""Validate deploy/ without a Docker engine (``make compose-check``; also run by ``make test``).

- docker-compose.yml parses; every service has an image or a build whose context and Dockerfile
  exist; ``depends_on``, named volumes, networks and ``env_file`` refer to things that exist; bind
  mounts exist; published host ports are unique; ``${...}`` interpolations are well formed; the
  Bytewax processes form one consistent ``-i/-a`` cluster.
- Prometheus: ``promtool check config`` and ``promtool check rules``; every scrape target names a
  Compose service.
- Grafana: provisioning files exist; every dashboard JSON loads and its queries use only metrics
  that the code exports (or Prometheus itself: ``up``).

Exit status 0 when everything holds, else 1 with one line per problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_INTERPOLATION = re.compile(r"\$(\$|\{([^}]*)\}|[A-Za-z_][A-Za-z0-9_]*)?")
_VAR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*((:?[-?+]).*)?$", re.DOTALL)
_PROMQL_DROP = re.compile(
    r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]|\$\w+|'
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
)
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_PROMQL_WORDS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "predict_linear",
        "histogram_quantile",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp",
        "clamp_min",
        "clamp_max",
        "exp",
        "ln",
        "log2",
        "log10",
        "sqrt",
        "time",
        "timestamp",
        "vector",
        "scalar",
        "sort",
        "sort_desc",
        "label_replace",
        "label_join",
        "absent",
        "absent_over_time",
        "changes",
        "resets",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "quantile_over_time",
        "stddev_over_time",
        "present_over_time",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "le",
    ]
)


def _interpolations(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        for m in _INTERPOLATION.finditer(value):
            if m.group(1) is None:
                yield f"lone '$' in {value!r} (write $$ for a literal dollar)"
            elif m.group(2) is not None and not _VAR.match(m.group(2)):
                yield f"bad interpolation ${{{m.group(2)}}} in {value!r}"
    elif isinstance(value, dict):
        for v in value.values():
            yield from _interpolations(v)
    elif isinstance(value, list):
        for v in value:
            yield from _interpolations(v)


def _names(spec: Any) -> list[str]:
    if isinstance(spec, dict):
        return list(spec)
    return list(spec or [])


def check_compose(deploy: Path) -> list[str]:
    """Problems of ``deploy/docker-compose.yml`` (empty when it holds together)."""
    path = deploy / "docker-compose.yml"
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path}: does not parse: {exc}"]
    problems = [f"{path}: {p}" for p in _interpolations(doc)]
    services: dict[str, Any] = doc.get("services") or {}
    volumes = set(doc.get("volumes") or {})
    networks = set(doc.get("networks") or {})
    host_ports: dict[str, str] = {}
    if not services:
        problems.append("no services")
    for name, svc in services.items():
        where = f"service {name}"
        if "image" not in svc and "build" not in svc:
            problems.append(f"{where}: neither image nor build")
        build = svc.get("build")
        if isinstance(build, dict):
            context = (deploy / build.get("context", ".")).resolve()
            if not context.is_dir():
                problems.append(f"{where}: build context {context} does not exist")
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{where}: Dockerfile {dockerfile} does not exist")
        for dep in _names(svc.get("depends_on")):
            if dep not in services:
                problems.append(f"{where}: depends on unknown service {dep!r}")
        for net in _names(svc.get("networks")):
            if net not in networks:
                problems.append(f"{where}: network {net!r} is not declared")
        env_files = svc.get("env_file") or []
        for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
            file = entry if isinstance(entry, str) else entry.get("path", "")
            required = entry.get("required", True) if isinstance(entry, dict) else True
            if required and not (deploy / file).is_file():
                problems.append(f"{where}: env_file {file} does not exist")
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0] if isinstance(mount, str) else mount.get("source", "")
            if source.startswith((".", "/")):
                if not (deploy / source).exists():
                    problems.append(f"{where}: bind mount source {source} does not exist")
            elif source not in volumes:
                problems.append(f"{where}: volume {source!r} is not declared")
        for port in svc.get("ports") or []:
            text = str(port)
            parts = text.split(":")
            if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
                problems.append(f"{where}: port {text!r} is not HOST:CONTAINER")
                continue
            if parts[0] in host_ports:
                problems.append(f"{where}: host port {parts[0]} is taken by {host_ports[parts[0]]}")
            host_ports[parts[0]] = name
    problems += _check_cluster(services)
    return problems


def _check_cluster(services: dict[str, Any]) -> list[str]:
    """The Bytewax processes: ids 0..N-1, each listing the N addresses of the processors."""
    procs = {
        n: s.get("environment") or {}
        for n, s in services.items()
        if "BYTEWAX_PROCESS_ID" in (s.get("environment") or {})
    }
    if not procs:
        return ["no Bytewax processor services (BYTEWAX_PROCESS_ID)"]
    problems = []
    ids = sorted(int(env["BYTEWAX_PROCESS_ID"]) for env in procs.values())
    if ids != list(range(len(procs))):
        problems.append(f"processor ids {ids} are not 0..{len(procs) - 1}")
    for name, env in procs.items():
        addresses = str(env.get("BYTEWAX_ADDRESSES", "")).split(";")
        hosts = [a.rsplit(":", 1)[0] for a in addresses]
        if len(addresses) != len(procs) or any(h not in services for h in hosts):
            problems.append(f"service {name}: BYTEWAX_ADDRESSES {addresses} != the processors")
        mine = addresses[int(env["BYTEWAX_PROCESS_ID"])] if len(addresses) == len(procs) else ""
        if not mine.startswith(f"{name}:"):
            problems.append(f"service {name}: its own address is not at its BYTEWAX_PROCESS_ID")
    return problems


def check_prometheus(deploy: Path, promtool: Path) -> list[str]:
    """``promtool check config`` and ``check rules``; scrape targets are Compose services."""
    problems = []
    config = deploy / "prometheus" / "prometheus.yml"
    for args in (["check", "config", str(config)], ["check", "rules", *_rule_files(config)]):
        run = subprocess.run([str(promtool), *args], capture_output=True, text=True, check=False)
        if run.returncode != 0:
            problems.append(f"promtool {' '.join(args[:2])}: {run.stdout}{run.stderr}".strip())
    services = set(yaml.safe_load((deploy / "docker-compose.yml").read_text())["services"])
    for job in yaml.safe_load(config.read_text()).get("scrape_configs", []):
        for static in job.get("static_configs", []):
            for target in static.get("targets", []):
                host = target.rsplit(":", 1)[0]
                if host != "localhost" and host not in services:
                    problems.append(f"scrape job {job['job_name']}: {host} is no Compose service")
    return problems


def _rule_files(config: Path) -> list[str]:
    files = yaml.safe_load(config.read_text()).get("rule_files", [])
    return [str(config.parent / f) for f in files]


def exported_metrics() -> set[str]:
    """Every series name the code exports: orchestrator (services and pipeline) and collector."""
    from datetime import timedelta

    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from collector.metrics import CollectorMetrics
    from core.settings import Settings
    from orchestrator.manager import ServiceManager
    from orchestrator.metrics import create_registry
    from orchestrator.pipeline_metrics import PipelineCollector, PipelineSample, PipelineSampler
    from orchestrator.service import HealthResult, HealthStatus, ServiceBase

    class _Probe(ServiceBase):
        name = "probe"

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

        async def health_check(self) -> HealthResult:
            return HealthResult(HealthStatus.HEALTHY)

    manager = ServiceManager(
        [_Probe()],
        health_interval=timedelta(seconds=1),
        shutdown_timeout=timedelta(seconds=1),
        start_timeout=timedelta(seconds=1),
    )
    sampler = PipelineSampler.__new__(PipelineSampler)
    full = PipelineSample(
        **{
            f: {("x",) * n: 1.0}
            for f, n in (
                ("events_in", 1),
                ("dlq", 1),
                ("lag", 1),
                ("resets", 1),
                ("reread", 1),
                ("strays", 1),
                ("windows", 1),
                ("calls", 2),
                ("errors", 2),
                ("cost", 2),
                ("latency", 3),
                ("insights", 2),
                ("decisions", 2),
                ("verdicts", 1),
                ("deployments", 1),
                ("weights", 2),
            )
        }
    )
    sampler.last = lambda: (full, 1.0)  # type: ignore[method-assign]
    sampler.errors = {"database": 0}
    registry = create_registry(manager, extra=[PipelineCollector(sampler, Settings())])
    asyncio.run(manager.start_all())
    asyncio.run(manager.check_health_once())
    names: set[str] = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    for reg in (registry, CollectorMetrics().registry):
        for family in text_string_to_metric_families(generate_latest(reg).decode()):
            names.add(family.name)
            names.update(s.name for s in family.samples)
    return names


def promql_metrics(expr: str) -> set[str]:
    """The metric names an expression reads (label matchers, strings, ranges dropped)."""
    stripped = _PROMQL_DROP.sub(" ", expr)
    return {w for w in _IDENT.findall(stripped) if w not in _PROMQL_WORDS}


def _exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            elif key == "definition" and isinstance(value, str) and "(" in value:
                yield re.sub(r"^label_values\((.*?)(,[^,]*)?\)$", r"\1", value)
            else:
                yield from _exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item)


def check_grafana(deploy: Path, known: set[str]) -> list[str]:
    """Provisioning exists; dashboards load and query only ``known`` metrics."""
    problems = []
    grafana = deploy / "grafana"
    for sub in ("provisioning/datasources", "provisioning/dashboards"):
        files = list((grafana / sub).glob("*.yml"))
        if not files:
            problems.append(f"grafana/{sub}: no provisioning file")
        for file in files:
            try:
                yaml.safe_load(file.read_text())
            except yaml.YAMLError as exc:
                problems.append(f"{file}: does not parse: {exc}")
    dashboards = sorted((grafana / "dashboards").glob("*.json"))
    if not dashboards:
        problems.append("grafana/dashboards: no dashboard")
    uids: set[str] = set()
    for file in dashboards:
        try:
            doc = json.loads(file.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{file.name}: not JSON: {exc}")
            continue
        uid = doc.get("uid", "")
        if not uid or uid in uids:
            problems.append(f"{file.name}: missing or duplicate uid {uid!r}")
        uids.add(uid)
        exprs = list(_exprs(doc.get("panels", []))) + list(_exprs(doc.get("templating", {})))
        if not exprs:
            problems.append(f"{file.name}: no queries")
        for expr in exprs:
            for name in sorted(promql_metrics(expr) - known):
                problems.append(f"{file.name}: query reads {name!r}, which nothing exports")
    return problems


def check_alert_metrics(deploy: Path, known: set[str]) -> list[str]:
    """Alert expressions read only exported metrics too."""
    rules = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
    problems = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            for name in sorted(promql_metrics(str(rule.get("expr", ""))) - known):
                problems.append(f"alert {rule.get('alert')}: reads {name!r}, which nothing exports")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run every check; print the problems; 0 when there are none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploy", type=Path, default=ROOT / "deploy")
    parser.add_argument("--promtool", type=Path, default=ROOT / ".tools" / "bin" / "promtool")
    args = parser.parse_args(argv)
    if not args.promtool.exists():
        print(f"promtool missing at {args.promtool}: run scripts/install-promtool.sh")
        return 1
    known = exported_metrics()
    problems = [
        *check_compose(args.deploy),
        *check_prometheus(args.deploy, args.promtool),
        *check_grafana(args.deploy, known),
        *check_alert_metrics(args.deploy, known),
    ]
    for problem in problems:
        print(problem)
    print(f"compose-check: {'FAILED' if problems else 'ok'} ({len(problems)} problem(s))")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
