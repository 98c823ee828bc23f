"""SIGHUP / admin reload: load, validate, apply what can change, keep the old settings on error."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import Settings, load_settings, updated
from orchestrator.reload import SettingsReloader, changed_keys
from orchestrator.service import ServiceBase

from .fakes import FakeService, make_manager


class Recording(FakeService):
    def __init__(self, name: str, journal: list[str], *, fail: bool = False) -> None:
        super().__init__(name, journal)
        self.fail = fail
        self.seen: list[Settings] = []

    async def reload(self, settings: Settings) -> None:
        self.seen.append(settings)
        if self.fail:
            raise RuntimeError("cannot apply")


def _with(settings: Settings, **orchestrator: object) -> Settings:
    return settings.with_overrides(
        orchestrator=dataclasses.replace(settings.orchestrator, **orchestrator)  # type: ignore[arg-type]
    )


def test_valid_reload_applies_log_level_thresholds_and_hands_settings_to_services() -> None:
    journal: list[str] = []
    good, bad = Recording("a", journal), Recording("b", journal, fail=True)
    manager = make_manager([good, bad])
    old = Settings()
    new = _with(dataclasses.replace(old, log_level="DEBUG"), failure_threshold=7, metrics_port=1)
    reloader = SettingsReloader(old, manager, lambda: new)

    outcome = asyncio.run(reloader.reload())
    assert outcome.applied
    assert outcome.changed == (
        "log_level",
        "orchestrator.metrics_port",
        "orchestrator.failure_threshold",
    )
    assert outcome.restart_required == ("orchestrator.metrics_port",)
    assert outcome.service_errors == {"b": "RuntimeError: cannot apply"}
    assert reloader.settings is new
    assert good.seen == [new]
    assert bad.seen == [new]
    assert logging.getLogger().level == logging.DEBUG
    assert manager._failure_threshold == 7


def test_invalid_settings_file_keeps_the_old_settings(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default]\nlog_level = 'INFO'\n")
    old = load_settings(tmp_path)
    journal: list[str] = []
    service = Recording("a", journal)
    manager = make_manager([service])
    reloader = SettingsReloader(old, manager, lambda: load_settings(tmp_path))
    (tmp_path / "settings.toml").write_text("[default]\nlog_level = 'LOUD'\n")

    outcome = asyncio.run(reloader.reload())
    assert not outcome.applied
    assert "log_level" in outcome.error
    assert "LOUD" in outcome.error
    assert reloader.settings is old
    assert service.seen == []
    with pytest.raises(ConfigurationError, match="reload rejected, old settings kept"):
        asyncio.run(reloader.reload_or_raise())


def test_reload_keeps_the_resolved_embedded_broker_address() -> None:
    resolved = Settings().with_overrides(
        kafka=dataclasses.replace(
            Settings().kafka, bootstrap_servers="127.0.0.1:4711", embedded_port=4711
        )
    )
    manager = make_manager([FakeService("a", [])])
    reloader = SettingsReloader(resolved, manager, Settings)
    outcome = asyncio.run(reloader.reload())
    assert outcome.applied
    assert outcome.changed == ()
    assert reloader.settings.kafka.bootstrap_servers == "127.0.0.1:4711"


def test_changed_keys_names_sections_and_keys() -> None:
    a = Settings()
    b = dataclasses.replace(a, api=updated(a.api, rate_limit__per_s=5.0), env="production")
    assert changed_keys(a, b) == ["env", "api.rate_limit.per_s"]


def test_service_base_reload_changes_nothing() -> None:
    class Plain(ServiceBase):
        name = "plain"

        async def start(self) -> None:
            return None

        async def stop(self) -> None:
            return None

    asyncio.run(Plain().reload(Settings()))


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    from orchestrator.observability import configure_logging

    configure_logging("INFO")
