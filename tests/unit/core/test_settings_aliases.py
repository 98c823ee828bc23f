"""Former keys (flat ``analyzers.anomaly_z_warning``, ``integrations.jira_base_url`` ...) still
load, from settings.toml and from variables, with a warning naming the new key."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from core.errors import ConfigurationError
from core.settings import Settings, SettingsDeprecationWarning, entries, load_settings
from core.settings.spec import Entry

ALIASED = [e for e in entries() if e.spec.old]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("LLMOPT_") or name.endswith("_FOR_DYNACONF"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _old_env(entry: Entry) -> str:
    assert entry.spec.old is not None
    return "LLMOPT_" + "__".join(p.upper() for p in entry.spec.old.split("."))


def test_there_are_former_keys() -> None:
    assert len(ALIASED) >= 20
    assert len({e.spec.old for e in ALIASED}) == len(ALIASED)
    assert not {e.spec.old for e in ALIASED} & {e.key for e in entries()}


@pytest.mark.parametrize("entry", ALIASED, ids=lambda e: e.key)
def test_a_former_variable_name_still_sets_the_new_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: Entry
) -> None:
    # The default's own variable text, given under the former name.
    text = Settings().as_env()[entry.env]
    monkeypatch.setenv(_old_env(entry), text)
    with pytest.warns(SettingsDeprecationWarning) as caught:
        loaded = load_settings(tmp_path)
    message = str(caught[0].message)
    assert entry.spec.old is not None
    assert entry.spec.old in message
    assert entry.key in message
    assert entry.env in message
    assert entry.get(loaded) == entry.default


def test_a_former_variable_carries_its_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_ANALYZERS__ANOMALY_Z_WARNING", "5.5")
    with pytest.warns(SettingsDeprecationWarning, match=r"analyzers\.anomaly\.z_warning"):
        loaded = load_settings(tmp_path)
    assert loaded.analyzers.anomaly.z_warning == 5.5
    assert loaded.analyzers.anomaly.z_critical == 8.0


def test_a_former_toml_key_carries_its_value(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        "[default.analyzers]\nanomaly_end_windows = 7\nmin_samples = 9\n"
    )
    with pytest.warns(SettingsDeprecationWarning, match=r"analyzers\.anomaly\.end_windows"):
        loaded = load_settings(tmp_path)
    assert loaded.analyzers.anomaly.end_windows == 7
    assert loaded.analyzers.min_samples == 9


def test_a_former_key_is_checked_against_the_new_keys_rule(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text("[default.analyzers]\nanomaly_end_windows = -1\n")
    with (
        pytest.warns(SettingsDeprecationWarning),
        pytest.raises(ConfigurationError, match=r"analyzers\.anomaly\.end_windows.*-1"),
    ):
        load_settings(tmp_path)


def test_the_new_names_load_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_ANALYZERS__ANOMALY__Z_WARNING", "5.5")
    (tmp_path / "settings.toml").write_text("[default.analyzers.anomaly]\nend_windows = 7\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingsDeprecationWarning)
        loaded = load_settings(tmp_path)
    assert loaded.analyzers.anomaly.z_warning == 5.5
    assert loaded.analyzers.anomaly.end_windows == 7


def test_a_former_and_a_new_key_together_are_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LLMOPT_ANALYZERS__ANOMALY_Z_WARNING", "5")
    monkeypatch.setenv("LLMOPT_ANALYZERS__ANOMALY__Z_WARNING", "6")
    with pytest.raises(ConfigurationError, match=r"keep only analyzers\.anomaly\.z_warning"):
        load_settings(tmp_path)
