"""``decisions.*`` settings: defaults, typed mappings, validation, ``as_env`` round trip."""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import (
    CacheStrategySettings,
    DecisionSettings,
    ProviderLimit,
    Settings,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LLMOPT_") or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


CUSTOM = DecisionSettings(
    cooldown=timedelta(minutes=5),
    min_confidence=0.8,
    candidates=("gpt-4o-mini", "claude-3-5-haiku-latest"),
    app_candidates={"support": ("gpt-4.1-nano",), "search": ("gemini-2.0-flash", "o3-mini")},
    provider_limits={
        "openai": ProviderLimit(requests_per_s=50.0, tokens_per_min=150_000.0),
        "anthropic": ProviderLimit(requests_per_s=20.0),
    },
    cache=CacheStrategySettings(exclude_params=("tools",)),
    prompt_rewrite=True,
)


def test_defaults_load(tmp_path: Path) -> None:
    s = load_settings(root=tmp_path)
    assert s.decisions == DecisionSettings()
    assert s.decisions.cooldown == timedelta(minutes=15)
    assert s.decisions.quality_tolerance == 0.02
    assert s.decisions.min_confidence == 0.7


def test_mappings_round_trip_through_as_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    custom = dataclasses.replace(Settings(), decisions=CUSTOM)
    for name, value in custom.as_env().items():
        monkeypatch.setenv(name, value)
    loaded = load_settings(root=tmp_path)
    assert loaded.decisions == CUSTOM
    assert loaded.decisions.app_candidates["search"] == ("gemini-2.0-flash", "o3-mini")
    assert loaded.decisions.provider_limits["anthropic"] == ProviderLimit(requests_per_s=20.0)
    assert loaded == custom


def test_toml_tables_become_typed(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        "[default.decisions]\n"
        'candidates = ["a", "b"]\n'
        'cooldown = "10min"\n'
        "[default.decisions.app_candidates]\n"
        'support = ["c", "a"]\n'
        "[default.decisions.provider_limits.openai]\n"
        "tokens_per_min = 90000\n"
    )
    d = load_settings(root=tmp_path).decisions
    assert d.candidates == ("a", "b")
    assert d.cooldown == timedelta(minutes=10)
    assert d.candidates_for("support") == ("a", "b", "c")
    assert d.candidates_for("other") == ("a", "b")
    assert d.provider_limits == {"openai": ProviderLimit(tokens_per_min=90000)}


@pytest.mark.parametrize(
    ("name", "value"),
    [("MIN_CONFIDENCE", "1.5"), ("QUALITY_TOLERANCE", "-0.1"), ("BATCHING_MAX_SIZE", "1")],
)
def test_out_of_range_numbers_name_the_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str
) -> None:
    monkeypatch.setenv(f"LLMOPT_DECISIONS__{name}", value)
    with pytest.raises(ConfigurationError, match=f"decisions.{name.lower()}"):
        load_settings(root=tmp_path)
