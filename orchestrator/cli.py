"""The ``llmopt`` command line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console

from collector.producer import TelemetryProducer
from core.errors import ConfigurationError, OptimizerError
from core.settings import Settings, load_settings

__all__ = ["app"]

app = typer.Typer(help="LLM Auto Optimizer", no_args_is_help=True, add_completion=False)
_err = Console(stderr=True)


@app.command()
def run() -> None:
    """Start every service in dependency order (same as ``python -m orchestrator``)."""
    from orchestrator.main import main

    raise typer.Exit(main())


@app.command()
def migrate() -> None:
    """Bring the database schema (storage.database_url) to this version's head and exit.

    Safe to run while the optimizer or the dataflow start on the same database (they migrate
    under the same lock); with ``processor.migrate_on_start = false`` the dataflow waits for it.
    """
    from storage.database import create_db_engine, head_revision, schema_revision
    from storage.database import migrate as upgrade

    settings = _settings()
    url = settings.storage.resolved_database_url
    engine = create_db_engine(url)
    try:
        before = upgrade(engine)
        after = schema_revision(engine)
    except OptimizerError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        _err.print(f"schema of {where} already at {after} (head {head_revision()})")
    else:
        _err.print(f"schema of {where} migrated from {before or 'nothing'} to {after}")


@app.command()
def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON lines")],
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka host:port (default: kafka.bootstrap_servers)")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="default: kafka.telemetry_topic")] = None,
) -> None:
    """Push recorded telemetry (one JSON event per line) into Kafka, keyed by app."""
    settings = _settings()
    servers = bootstrap or settings.kafka.bootstrap_servers
    if not servers:
        _err.print("no Kafka: pass --bootstrap or set kafka.bootstrap_servers")
        raise typer.Exit(2)
    producer = TelemetryProducer(servers, topic or settings.kafka.telemetry_topic)
    with file.open("rb") as fh:
        lines = (line.rstrip(b"\r\n") for line in fh)
        try:
            report = producer.send_all(line for line in lines if line.strip())
        except OptimizerError as exc:
            _err.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
    _err.print(f"delivered {report.delivered}, failed {report.failed}")
    for error in report.errors:
        _err.print(f"  {error}")
    if report.failed:
        raise typer.Exit(1)


@app.command()
def backtest(
    input_file: Annotated[
        Path, typer.Argument(metavar="INPUT.jsonl", exists=True, dir_okay=False, help="JSON lines")
    ],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
) -> None:
    """Replay recorded telemetry through the real dataflow in event-time order."""
    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from flows.backtest import run_backtest

    settings = _settings()
    columns = (*Progress.get_default_columns()[:2], MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=_err) as bar:
        task = bar.add_task("backtest", total=None)
        result = run_backtest(
            settings,
            input_file,
            out,
            progress=lambda n: bar.advance(task, n),
            on_total=lambda n: bar.update(task, total=n),
        )
    _err.print(
        f"{result.records} records → {result.windows} window emissions, {result.insights} "
        f"insights, {result.decisions} decisions, {result.strays} late or unmatched, "
        f"{result.dead_letters} dead letters; wrote {out}/windows.jsonl, insights.jsonl, "
        "decisions.jsonl, late.jsonl, dlq.jsonl, report.html"
    )


@app.command()
def simulate(
    scenario: Annotated[
        str,
        typer.Option(
            help="built-in scenario (fleet, cheaper-good, cheaper-worse, "
            "latency-regression, binary-fleet) or a scenario file (.json/.toml)"
        ),
    ] = "fleet",
    duration: Annotated[
        str | None, typer.Option(help="simulated time to run, e.g. 90min (default: scenario's)")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="simulated seconds per wall second; 0: as fast as possible")
    ] = 60.0,
    target: Annotated[
        str,
        typer.Option(
            help="kafka, rest (POST /api/v1/telemetry), otlp (collector OTLP/HTTP) or inprocess"
        ),
    ] = "kafka",
    bootstrap: Annotated[
        str | None, typer.Option(help="Kafka host:port (default: kafka.bootstrap_servers)")
    ] = None,
    topic: Annotated[str | None, typer.Option(help="default: kafka.telemetry_topic")] = None,
    api_url: Annotated[
        str | None, typer.Option(help="REST base URL (default: http://api.host:api.port)")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(help="x-api-key (default: api.bootstrap_admin_key)")
    ] = None,
    otlp_url: Annotated[
        str | None,
        typer.Option(help="collector OTLP/HTTP base URL (default: collector.host:http_port)"),
    ] = None,
    config_source: Annotated[
        str | None,
        typer.Option(
            help="rest (GET /api/v1/config/{app}) or db (storage.database_url); "
            "default: rest, db for inprocess"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (default: scenario's)")] = None,
    tick: Annotated[float, typer.Option(help="simulated seconds per tick")] = 10.0,
    report: Annotated[Path | None, typer.Option(help="also write the report as JSON")] = None,
) -> None:
    """Run a fleet of simulated LLM apps against the optimizer and report against the truth."""
    from simulator.cli import SimulateOptions, simulate_command

    settings = _settings()
    try:
        code = simulate_command(
            settings,
            SimulateOptions(
                scenario=scenario, duration=duration, speed=speed, target=target,
                bootstrap=bootstrap, topic=topic, api_url=api_url, api_key=api_key,
                otlp_url=otlp_url, config_source=config_source, seed=seed, tick=tick, report=report,
            ),
            _err,
        )  # fmt: skip
    except (OptimizerError, ValueError, OSError) as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    raise typer.Exit(code)


def _moment(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=name) from exc
    if at.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} has no UTC offset (write e.g. {text}Z or {text}+02:00)", param_hint=name
        )
    return at.astimezone(UTC)


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="folder for the .parquet files")],
    from_backtest: Annotated[
        Path | None,
        typer.Option(
            "--from-backtest",
            file_okay=False,
            help="a backtest's --out folder (default: the database, storage.database_url)",
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="read this database (default: storage.database_url)")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(help="windows, insights or decisions; repeat for several (default: all)"),
    ] = None,
    app_name: Annotated[str | None, typer.Option("--app", help="only this app")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="from this time, inclusive (ISO 8601 with offset, e.g. 2026-12-01T00:00Z)"
        ),
    ] = None,
    until: Annotated[str | None, typer.Option(help="up to this time, exclusive (ISO 8601)")] = None,
) -> None:
    """Write windows, insights and decisions as Parquet files (<kind>.parquet) for notebooks.

    Reads the optimizer's database, or a backtest's output folder with --from-backtest.

    Windows and insights are filtered by their window's start, decisions by their creation.

    Read them with polars: pl.read_parquet("OUT/windows.parquet").
    """
    from flows.export import KINDS, ExportFilter, export_backtest, export_database
    from storage.database import create_db_engine
    from storage.export import ExportKind

    kinds = list(dict.fromkeys(kind or KINDS))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: not one of {', '.join(KINDS)}", param_hint="--kind"
        )
    chosen = cast(list[ExportKind], kinds)
    try:
        where = ExportFilter(app_name, _moment("--since", since), _moment("--until", until))
        if from_backtest is not None:
            if database_url is not None:
                raise typer.BadParameter("give --from-backtest or --database-url, not both")
            counts = export_backtest(from_backtest, out, chosen, where)
        else:
            engine = create_db_engine(database_url or _settings().storage.resolved_database_url)
            try:
                counts = export_database(engine, out, chosen, where)
            finally:
                engine.dispose()
    except OptimizerError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    _err.print(", ".join(f"{n} {k} → {out / f'{k}.parquet'}" for k, n in counts.items()))


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        _err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc


if __name__ == "__main__":
    app()
