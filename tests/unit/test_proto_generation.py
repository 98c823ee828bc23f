"""The committed generated code matches the protos, and the messages carry the contract's fields."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from proto import generate
from proto.llmopt.v1 import common_pb2, metrics_pb2, metrics_pb2_grpc

CHECKED_IN = generate.PROTO_ROOT


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def _window(**overrides: object) -> common_pb2.WindowStats:
    fields: dict[str, object] = {
        "kind": "tumbling",
        "window_start": _timestamp(datetime(2025, 1, 1, 12, 0, tzinfo=UTC)),
        "window_end": _timestamp(datetime(2025, 1, 1, 12, 1, tzinfo=UTC)),
        "app": "support-bot",
        "task": "classify",
        "model": "gpt-4o-mini",
        "variant": "canary",
        "count": 120,
        "ok_count": 117,
        "error_count": 3,
        "errors_by_type": {"rate_limited": 2, "timeout": 1},
        "latency_ms": common_pb2.LatencyStats(
            p50=410.5, p90=800.0, p95=950.25, p99=1400.0, max=2100.0
        ),
        "ttft_ms": common_pb2.TtftStats(p50=120.0, p95=300.5),
        "input_tokens": 48_000,
        "output_tokens": 9_600,
        "cache_read_tokens": 12_000,
        "cost_usd": 0.0315,
        "cost_per_success_usd": 0.000269,
        "quality": common_pb2.QualityStats(
            count=40, mean=0.81, stddev=0.12, ci95_low=0.77, ci95_high=0.85
        ),
        "distinct_prompts": 90,
        "repeat_ratio": 0.25,
        "rate_per_s": 2.0,
        "peak_rate_per_s": 5.5,
        "first_event_at": _timestamp(datetime(2025, 1, 1, 12, 0, 0, 250_000, tzinfo=UTC)),
        "last_event_at": _timestamp(datetime(2025, 1, 1, 12, 0, 59, 750_000, tzinfo=UTC)),
    }
    fields.update(overrides)
    return common_pb2.WindowStats(**fields)  # type: ignore[arg-type]


def test_generated_code_is_current(tmp_path: Path) -> None:
    generated = generate.generate(tmp_path)

    assert generated == generate.generated_files(CHECKED_IN), (
        "the generated files differ from the checked-in ones: run `make proto`"
    )
    stale = [
        str(path)
        for path in generated
        if (tmp_path / path).read_bytes() != (CHECKED_IN / path).read_bytes()
    ]
    assert not stale, f"out of date (edit the .proto, then run `make proto`): {stale}"


def test_every_proto_has_its_four_generated_files(tmp_path: Path) -> None:
    generated = {path.name for path in generate.generate(tmp_path)}

    for source in generate.proto_sources():
        stem = source.stem
        for suffix in ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi"):
            assert f"{stem}{suffix}" in generated


def test_generation_drops_files_of_removed_protos(tmp_path: Path) -> None:
    leftover = tmp_path / "llmopt" / "v1" / "gone_pb2.py"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("# from a .proto that no longer exists\n")

    generate.generate(tmp_path)

    assert not leftover.exists()


def test_generated_modules_import_from_the_repository_package() -> None:
    text = (CHECKED_IN / "llmopt" / "v1" / "metrics_pb2_grpc.py").read_text()

    assert "from proto.llmopt.v1 import metrics_pb2" in text
    assert "'/llmopt.v1.MetricsService/GetSummary'" in text
    assert common_pb2.WindowStats.__module__ == "proto.llmopt.v1.common_pb2"
    assert metrics_pb2.DESCRIPTOR.package == "llmopt.v1"
    assert metrics_pb2.DESCRIPTOR.name == "llmopt/v1/metrics.proto"


def test_window_stats_round_trip() -> None:
    window = _window()

    decoded = common_pb2.WindowStats.FromString(window.SerializeToString())

    assert decoded == window
    assert decoded.kind == "tumbling"
    assert dict(decoded.errors_by_type) == {"rate_limited": 2, "timeout": 1}
    assert decoded.latency_ms.p95 == 950.25
    assert decoded.ttft_ms.p95 == 300.5
    assert decoded.cost_per_success_usd == pytest.approx(0.000269)
    assert decoded.quality.ci95_high == pytest.approx(0.85)
    assert decoded.window_start.ToDatetime(tzinfo=UTC) == datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    assert decoded.last_event_at.ToDatetime(tzinfo=UTC) == datetime(
        2025, 1, 1, 12, 0, 59, 750_000, tzinfo=UTC
    )


def test_window_stats_keep_absent_optionals_absent() -> None:
    window = _window(ttft_ms=None, cost_per_success_usd=None, quality=common_pb2.QualityStats())

    decoded = common_pb2.WindowStats.FromString(window.SerializeToString())

    assert not decoded.HasField("ttft_ms")
    assert not decoded.HasField("cost_per_success_usd")
    assert decoded.HasField("quality")
    assert decoded.quality.count == 0
    assert not decoded.quality.HasField("mean")
    assert not decoded.quality.HasField("ci95_low")


def test_window_stats_fields_match_the_contract() -> None:
    contract = [
        "kind",
        "window_start",
        "window_end",
        "app",
        "task",
        "model",
        "variant",
        "count",
        "ok_count",
        "error_count",
        "errors_by_type",
        "latency_ms",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cost_usd",
        "cost_per_success_usd",
        "quality",
        "distinct_prompts",
        "repeat_ratio",
        "rate_per_s",
        "peak_rate_per_s",
        "first_event_at",
        "last_event_at",
    ]
    extensions = [
        "config_version",
        "shadow",
    ]  # docs/processing.md: windows per config version, shadow

    assert [f.name for f in common_pb2.WindowStats.DESCRIPTOR.fields] == contract + extensions


def test_telemetry_event_round_trip_keeps_presence() -> None:
    attributes = struct_pb2.Struct()
    attributes.update({"region": "eu", "retries": 2})
    event = common_pb2.TelemetryEvent(
        event_id="e-1",
        timestamp=_timestamp(datetime(2025, 1, 1, 12, 0, tzinfo=UTC)),
        app="support-bot",
        model="gpt-4o-mini",
        latency_ms=0.0,
        input_tokens=0,
        output_tokens=12,
        quality=0.0,
        attributes=attributes,
    )

    decoded = common_pb2.TelemetryEvent.FromString(event.SerializeToString())

    assert decoded == event
    # Explicit zeros are present; unset optionals are not (so defaults can apply).
    assert decoded.HasField("latency_ms")
    assert decoded.HasField("input_tokens")
    assert decoded.HasField("quality")
    assert not decoded.HasField("task")
    assert not decoded.HasField("kind")
    assert not decoded.HasField("cost_usd")
    assert decoded.attributes["region"] == "eu"


def test_metrics_service_is_declared() -> None:
    service = metrics_pb2.DESCRIPTOR.services_by_name["MetricsService"]
    method = service.methods_by_name["GetSummary"]

    assert method.input_type.full_name == "llmopt.v1.GetSummaryRequest"
    assert method.output_type.full_name == "llmopt.v1.GetSummaryResponse"
    assert hasattr(metrics_pb2_grpc, "add_MetricsServiceServicer_to_server")
    request = metrics_pb2.GetSummaryRequest(app="support-bot")
    assert not request.HasField("task")
    response = metrics_pb2.GetSummaryResponse(windows=[_window(), _window(kind="sliding")])
    assert metrics_pb2.GetSummaryResponse.FromString(response.SerializeToString()) == response
