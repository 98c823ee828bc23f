"""Settings (CONTRACT.md §5): defaults, overrides, validation messages, `as_env` round trip."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ConfigurationError, OptimizerError
from core.settings import (
    ApiSettings,
    KafkaSettings,
    OrchestratorSettings,
    ProcessorSettings,
    Settings,
    StorageSettings,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No LLMOPT_* or dynaconf control variables from the outside; cwd is a fresh folder."""
    for name in list(os.environ):
        if name.startswith("LLMOPT_") or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def load(root: Path) -> Settings:
    return load_settings(root=root)


# --- defaults ---------------------------------------------------------------------------------


def test_defaults_match_the_contract(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert s.env == "development"
    assert s.log_level == "INFO"
    assert s.kafka.bootstrap_servers == ""
    assert s.kafka.embedded is True
    assert s.kafka.brokers == []
    assert s.kafka.telemetry_topic == "llm.telemetry"
    assert s.kafka.dlq_topic == "llm.telemetry.dlq"
    assert s.kafka.tail is True
    assert s.storage.database_url == ""
    assert s.storage.redis_url == ""
    assert s.storage.data_dir == "./var"
    expected_db = f"sqlite:///{(tmp_path / 'var').resolve() / 'llmopt.sqlite3'}"
    assert s.storage.resolved_database_url == expected_db
    assert s.processor.tumbling_window == timedelta(seconds=60)
    assert s.processor.sliding_window == timedelta(seconds=300)
    assert s.processor.sliding_step == timedelta(seconds=60)
    assert s.processor.allowed_lateness == timedelta(seconds=30)
    assert s.processor.dedup_ttl == timedelta(hours=1)
    assert s.processor.feedback_join_window == timedelta(minutes=10)
    assert s.api.port == 8080
    assert s.api.bootstrap_admin_key == ""
    assert s.orchestrator.metrics_port == 9090


def test_loaded_defaults_equal_the_dataclass_defaults(tmp_path: Path) -> None:
    assert load(tmp_path) == Settings()


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.kafka.tail = False  # type: ignore[misc]


# --- overrides --------------------------------------------------------------------------------


def test_environment_variables_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPT_KAFKA__BOOTSTRAP_SERVERS", "host:9092")
    monkeypatch.setenv("LLMOPT_STORAGE__DATABASE_URL", "postgresql+psycopg://u@h/db")
    s = load(tmp_path)
    assert s.kafka.bootstrap_servers == "host:9092"
    assert s.kafka.embedded is False
    assert s.kafka.brokers == ["host:9092"]
    assert s.storage.database_url == "postgresql+psycopg://u@h/db"
    assert s.storage.resolved_database_url == "postgresql+psycopg://u@h/db"
    # The rest keeps its defaults.
    assert s.kafka.telemetry_topic == "llm.telemetry"
    assert s.processor.tumbling_window == timedelta(seconds=60)


def test_several_brokers_and_durations_from_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_KAFKA__BOOTSTRAP_SERVERS", "a:9092, b:9093")
    monkeypatch.setenv("LLMOPT_KAFKA__TAIL", "false")
    monkeypatch.setenv("LLMOPT_PROCESSOR__TUMBLING_WINDOW", "2min")
    monkeypatch.setenv("LLMOPT_PROCESSOR__DEDUP_TTL", "1h30m")
    monkeypatch.setenv("LLMOPT_PROCESSOR__ALLOWED_LATENESS", "0s")
    monkeypatch.setenv("LLMOPT_API__PORT", "8443")
    s = load(tmp_path)
    assert s.kafka.brokers == ["a:9092", "b:9093"]
    assert s.kafka.tail is False
    assert s.processor.tumbling_window == timedelta(minutes=2)
    assert s.processor.dedup_ttl == timedelta(minutes=90)
    assert s.processor.allowed_lateness == timedelta(0)
    assert s.api.port == 8443


SETTINGS_TOML = """
[default]
log_level = "WARNING"

[default.kafka]
telemetry_topic = "t.default"

[default.processor]
tumbling_window = "30s"

[development]
api = { port = 8001 }

[production]
kafka = { bootstrap_servers = "prod-kafka:9092" }
storage = { database_url = "postgresql+psycopg://prod@db/llmopt" }
api = { port = 8443, host = "0.0.0.0" }
"""


def test_settings_toml_default_section(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(SETTINGS_TOML)
    s = load(tmp_path)
    assert s.env == "development"
    assert s.log_level == "WARNING"
    assert s.kafka.telemetry_topic == "t.default"
    assert s.kafka.bootstrap_servers == ""
    assert s.kafka.embedded is True
    assert s.processor.tumbling_window == timedelta(seconds=30)
    assert s.api.port == 8001
    assert s.api.host == "127.0.0.1"


def test_settings_toml_production_section_with_llmopt_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "settings.toml").write_text(SETTINGS_TOML)
    monkeypatch.setenv("LLMOPT_ENV", "production")
    s = load(tmp_path)
    assert s.env == "production"
    assert s.log_level == "WARNING"  # from [default]
    assert s.kafka.telemetry_topic == "t.default"  # [default] merged under [production]
    assert s.kafka.bootstrap_servers == "prod-kafka:9092"
    assert s.kafka.embedded is False
    assert s.storage.database_url == "postgresql+psycopg://prod@db/llmopt"
    assert s.api.port == 8443
    assert s.api.host == "0.0.0.0"
    assert s.processor.tumbling_window == timedelta(seconds=30)
    assert s.processor.sliding_window == timedelta(seconds=300)  # built-in default


def test_environment_argument_selects_the_section(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(SETTINGS_TOML)
    s = load_settings(root=tmp_path, environment="production")
    assert s.env == "production"
    assert s.kafka.bootstrap_servers == "prod-kafka:9092"


def test_variables_beat_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(SETTINGS_TOML)
    monkeypatch.setenv("LLMOPT_ENV", "production")
    monkeypatch.setenv("LLMOPT_API__PORT", "9443")
    monkeypatch.setenv("LLMOPT_KAFKA__BOOTSTRAP_SERVERS", "host:9092")
    s = load(tmp_path)
    assert s.api.port == 9443
    assert s.api.host == "0.0.0.0"
    assert s.kafka.bootstrap_servers == "host:9092"


def test_secrets_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".secrets.toml").write_text('[default]\napi = { bootstrap_admin_key = "s3cret" }\n')
    s = load(tmp_path)
    assert s.api.bootstrap_admin_key == "s3cret"
    assert "s3cret" not in repr(s)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "key", "shown", "rule"),
    [
        ("LLMOPT_API__PORT", "70000", "api.port", "70000", "65535"),
        ("LLMOPT_API__PORT", "-1", "api.port", "-1", "within [0, 65535]"),
        ("LLMOPT_PROCESSOR__DEDUP_TTL", "abc", "processor.dedup_ttl", "abc", "duration"),
        ("LLMOPT_PROCESSOR__TUMBLING_WINDOW", "0s", "processor.tumbling_window", "0s", "positive"),
        (
            "LLMOPT_PROCESSOR__SLIDING_WINDOW",
            "-5s",
            "processor.sliding_window",
            "-5s",
            "duration",
        ),
        (
            "LLMOPT_STORAGE__DATABASE_URL",
            "mysql://x",
            "storage.database_url",
            "mysql://x",
            "postgresql",
        ),
        (
            "LLMOPT_STORAGE__REDIS_URL",
            "memcached://x",
            "storage.redis_url",
            "memcached://x",
            "redis://",
        ),
        (
            "LLMOPT_KAFKA__BOOTSTRAP_SERVERS",
            "nohostport",
            "kafka.bootstrap_servers",
            "nohostport",
            "host:port",
        ),
        (
            "LLMOPT_KAFKA__BOOTSTRAP_SERVERS",
            "a:9092,b:port",
            "kafka.bootstrap_servers",
            "a:9092,b:port",
            "host:port",
        ),
        ("LLMOPT_LOG_LEVEL", "LOUD", "log_level", "LOUD", "DEBUG"),
        # dynaconf leaves a non-boolean string as a string; the bool rule rejects it.
        ("LLMOPT_KAFKA__TAIL", "maybe", "kafka.tail", "maybe", "bool"),
        ("LLMOPT_PROCESSOR__WORKERS", "0", "processor.workers", "0", "within [1, 256]"),
        (
            "LLMOPT_KAFKA__MAX_MESSAGE_BYTES",
            "100",
            "kafka.max_message_bytes",
            "100",
            "within [1024, 268435456]",
        ),
        (
            "LLMOPT_KAFKA__MAX_MESSAGE_BYTES",
            "1000000000",
            "kafka.max_message_bytes",
            "1000000000",
            "within [1024,",
        ),
    ],
)
def test_invalid_values_name_key_value_and_rule(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variable: str,
    value: str,
    key: str,
    shown: str,
    rule: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load(tmp_path)
    message = str(info.value)
    assert key in message
    assert shown in message
    assert rule in message
    assert isinstance(info.value, OptimizerError)


def test_invalid_value_in_settings_toml(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default]\napi = { port = 70000 }\n")
    with pytest.raises(ConfigurationError, match=r"api\.port.*65535.*70000|api\.port.*70000"):
        load(tmp_path)


def test_invalid_value_only_in_production(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        '[production]\nstorage = { database_url = "mysql://prod" }\n'
    )
    assert load(tmp_path).storage.database_url == ""
    monkeypatch.setenv("LLMOPT_ENV", "production")
    with pytest.raises(ConfigurationError, match=r"storage\.database_url.*mysql://prod"):
        load(tmp_path)


def test_sliding_step_larger_than_window_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_PROCESSOR__SLIDING_STEP", "10min")
    with pytest.raises(ConfigurationError) as info:
        load(tmp_path)
    message = str(info.value)
    assert "processor.sliding_step" in message
    assert "processor.sliding_window" in message
    assert "0:10:00" in message
    assert "must not exceed" in message


def test_sliding_step_equal_to_window_is_fine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_PROCESSOR__SLIDING_STEP", "5min")
    assert load(tmp_path).processor.sliding_step == timedelta(minutes=5)


def test_several_rest_workers_need_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPT_API__WORKERS", "2")
    with pytest.raises(ConfigurationError, match=r"api\.workers.*storage\.redis_url.*2"):
        load(tmp_path)
    monkeypatch.setenv("LLMOPT_STORAGE__REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load(tmp_path).api.workers == 2


def test_several_grpc_workers_need_redis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert load(tmp_path).grpc.workers == 1
    monkeypatch.setenv("LLMOPT_GRPC__WORKERS", "3")
    with pytest.raises(ConfigurationError, match=r"grpc\.workers.*storage\.redis_url.*3"):
        load(tmp_path)
    monkeypatch.setenv("LLMOPT_STORAGE__REDIS_URL", "redis://127.0.0.1:6379/0")
    assert load(tmp_path).grpc.workers == 3
    monkeypatch.setenv("LLMOPT_GRPC__WORKERS", "65")
    with pytest.raises(ConfigurationError, match=r"grpc\.workers"):
        load(tmp_path)


def test_grpc_worker_count_follows_redis(tmp_path: Path) -> None:
    from dataclasses import replace

    from api.grpc.worker import worker_count

    settings = load(tmp_path)
    no_redis = replace(settings, grpc=replace(settings.grpc, workers=0))
    assert worker_count(no_redis) == 1
    shared = replace(no_redis, storage=replace(no_redis.storage, redis_url="redis://h:6379/0"))
    assert worker_count(shared) == len(os.sched_getaffinity(0))
    assert worker_count(settings) == 1


def test_rest_worker_count_follows_redis(tmp_path: Path) -> None:
    from dataclasses import replace

    from api.rest.server import worker_count

    settings = load(tmp_path)
    assert settings.api.workers == 0
    assert worker_count(settings) == 1  # in-process limiter and cache: one process
    shared = replace(settings, storage=replace(settings.storage, redis_url="redis://h:6379/0"))
    assert worker_count(shared) == len(os.sched_getaffinity(0))
    assert worker_count(replace(shared, api=replace(shared.api, workers=3))) == 3


def test_tls_needs_both_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LLMOPT_API__TLS_CERT_PATH", "/etc/llmopt/cert.pem")
    with pytest.raises(ConfigurationError, match=r"api\.tls_cert_path and api\.tls_key_path"):
        load(tmp_path)


def test_dlq_topic_equal_to_telemetry_topic_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_KAFKA__DLQ_TOPIC", "llm.telemetry")
    with pytest.raises(ConfigurationError) as info:
        load(tmp_path)
    message = str(info.value)
    assert "kafka.dlq_topic" in message
    assert "kafka.telemetry_topic" in message
    assert "'llm.telemetry'" in message
    assert "differ" in message


@pytest.mark.parametrize("value", ["9999999999d", "99999999999999999999s"])
def test_absurdly_large_duration_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    monkeypatch.setenv("LLMOPT_PROCESSOR__DEDUP_TTL", value)
    with pytest.raises(ConfigurationError, match=r"processor\.dedup_ttl"):
        load(tmp_path)


def test_infinite_duration_in_toml_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default]\nprocessor = { dedup_ttl = inf }\n")
    with pytest.raises(ConfigurationError, match=r"processor\.dedup_ttl"):
        load(tmp_path)


# --- as_env -----------------------------------------------------------------------------------


def _custom(tmp_path: Path) -> Settings:
    base = Settings()
    return dataclasses.replace(
        base,
        env="production",
        log_level="DEBUG",
        kafka=KafkaSettings(
            bootstrap_servers="h1:9092,h2:9093",
            telemetry_topic="t.custom",
            dlq_topic="t.custom.dlq",
            tail=False,
            partitions=7,
            embedded_port=0,
        ),
        storage=StorageSettings(
            database_url="postgresql+psycopg://u@h/db",
            redis_url="redis://r:6379/1",
            data_dir=str(tmp_path / "data"),
        ),
        processor=ProcessorSettings(
            tumbling_window=timedelta(seconds=30),
            sliding_window=timedelta(minutes=10),
            sliding_step=timedelta(milliseconds=1500),
            allowed_lateness=timedelta(0),
            dedup_ttl=timedelta(hours=2),
            feedback_join_window=timedelta(minutes=5),
            workers=4,
            processes=2,
            recovery_dir=str(tmp_path / "recovery"),
        ),
        # Values dynaconf would read as TOML numbers or booleans without protection.
        api=ApiSettings(host="0.0.0.0", port=9999, bootstrap_admin_key="1e3"),
        orchestrator=OrchestratorSettings(
            health_interval=timedelta(seconds=5),
            shutdown_timeout=timedelta(milliseconds=7250),
            start_timeout=timedelta(seconds=90),
            metrics_port=9191,
        ),
    )


def _apply(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_as_env_round_trips_custom_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    custom = _custom(tmp_path)
    assert custom != Settings()
    _apply(monkeypatch, custom.as_env())
    assert load(tmp_path) == custom


def test_as_env_round_trips_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _apply(monkeypatch, Settings().as_env())
    assert load(tmp_path) == Settings()


@pytest.mark.parametrize("admin_key", ["true", "12345", "1.5", "[1]", "", " padded ", "p@ss"])
def test_as_env_keeps_strings_that_look_like_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, admin_key: str
) -> None:
    s = dataclasses.replace(Settings(), api=ApiSettings(bootstrap_admin_key=admin_key))
    _apply(monkeypatch, s.as_env())
    assert load(tmp_path).api.bootstrap_admin_key == admin_key


def test_as_env_names_every_field() -> None:
    env = Settings().as_env()
    expected = {"LLMOPT_ENV", "LLMOPT_LOG_LEVEL"}
    sections = [f.name for f in dataclasses.fields(Settings) if f.name not in ("env", "log_level")]
    assert {"kafka", "storage", "processor", "api", "orchestrator", "analyzers"} <= set(sections)

    def add(prefix: str, value: object) -> None:
        for f in dataclasses.fields(value):  # type: ignore[arg-type]
            inner = getattr(value, f.name)
            if dataclasses.is_dataclass(inner):  # a nested section: one more level
                add(f"{prefix}__{f.name.upper()}", inner)
            else:
                expected.add(f"{prefix}__{f.name.upper()}")

    for section in sections:
        add(f"LLMOPT_{section.upper()}", getattr(Settings(), section))
    assert "LLMOPT_ANALYZERS__ANOMALY__Z_WARNING" in expected
    assert set(env) == expected
    assert all(isinstance(v, str) for v in env.values())


def test_with_overrides_replaces_whole_sections(tmp_path: Path) -> None:
    s = load(tmp_path)
    t = s.with_overrides(kafka=KafkaSettings(bootstrap_servers="x:1"))
    assert t.kafka.bootstrap_servers == "x:1"
    assert t.kafka.embedded is False
    assert t.processor == s.processor
    assert s.kafka.bootstrap_servers == ""


@pytest.mark.parametrize(
    ("key", "replacement"),
    [
        ("QUALITY_TOLERANCE", "decisions.quality_tolerance"),
        ("MAX_STAGE_DURATION", "canary.max_rollout_duration"),
    ],
)
def test_a_retired_canary_key_is_an_error_naming_its_replacement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, replacement: str
) -> None:
    monkeypatch.setenv(f"LLMOPT_CANARY__{key}", "0.1")
    with pytest.raises(ConfigurationError, match=replacement):
        load(tmp_path)


@pytest.mark.parametrize(
    ("key", "value"), [("ALPHA", "0.9"), ("RISK_BUDGET", "0"), ("SHADOW_SHARE", "1.5")]
)
def test_canary_planning_settings_are_validated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str
) -> None:
    monkeypatch.setenv(f"LLMOPT_CANARY__{key}", value)
    with pytest.raises(ConfigurationError, match=f"canary.{key.lower()}"):
        load(tmp_path)
