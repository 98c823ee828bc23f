"""Settings declared once: every field has a spec whose rule its default follows, the reference
in docs/configuration.md is the one the fields generate, restart-only keys come from the specs."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings, entries, restart_only_keys
from core.settings.reference import BEGIN, END, main, reference, render_default, splice

DOCS = Path(__file__).resolve().parents[3] / "docs" / "configuration.md"


def _raw(value: Any) -> Any:
    """A typed default as TOML would give it."""
    if isinstance(value, timedelta):
        return f"{value.total_seconds()}s"
    return value


def test_every_default_follows_its_own_rule() -> None:
    broken = [e.key for e in entries() if not e.spec.rule.accepts(_raw(e.default))]
    assert broken == []


def test_every_default_converts_to_itself() -> None:
    for e in entries():
        assert e.spec.rule.convert(_raw(e.default)) == e.default, e.key


def test_every_setting_has_a_meaning_and_a_unique_variable() -> None:
    found = list(entries())
    assert len(found) > 200
    assert all(e.spec.doc.strip() for e in found)
    assert len({e.env for e in found}) == len(found)


def test_the_committed_reference_is_the_generated_one() -> None:
    document = DOCS.read_text()
    assert splice(document, reference()) == document, "run `make settings-reference`"


def test_the_check_command_fails_on_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "configuration.md"
    page.write_text(f"# title\n\n{BEGIN}\n| `kafka.tail` | `false` | | |\n{END}\n")
    assert main(["--check", str(page)]) == 1
    assert main(["--write", str(page)]) == 0
    assert main(["--check", str(page)]) == 0
    assert "| `kafka.tail` | `true` |" in page.read_text()


def test_splice_needs_both_markers() -> None:
    with pytest.raises(ValueError, match="markers"):
        splice("no markers here", reference())


def test_the_reference_names_every_key_with_its_default() -> None:
    text = reference()
    for e in entries():
        assert f"| `{e.key}` |" in text
        if e.spec.shown is None:
            assert f"| `{e.key}` | `{render_default(e.default)}` |" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=15), "15min"),
        (timedelta(days=3), "3d"),
        (timedelta(milliseconds=500), "500ms"),
        ((0.01, 0.5), "[0.01, 0.5]"),
        (("a", "b"), '["a", "b"]'),
        (False, "false"),
        ("", "empty"),
    ],
)
def test_defaults_are_shown_as_they_are_written(value: Any, shown: str) -> None:
    assert render_default(value) == shown


def test_restart_only_keys_are_addresses_ports_and_what_is_read_once() -> None:
    keys = restart_only_keys()
    assert {"kafka.bootstrap_servers", "storage.database_url", "api.port", "grpc.port"} <= keys
    assert "log_level" not in keys
    assert all(any(e.key == k for e in entries()) for k in keys)
    assert Settings().api.port == 8080
