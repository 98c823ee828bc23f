"""docs/contract.md keeps the outside contract's floor word for word and adds to it only."""

from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "contract.md"


def _sections(text: str) -> dict[str, str]:
    """The numbered ``## N.`` sections by heading, each with its body."""
    out: dict[str, str] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
            out[heading] = ""
        elif heading is not None:
            out[heading] += line + "\n"
    return out


def test_the_floor_sections_are_kept_and_extensions_are_listed() -> None:
    ours = _sections(DOC.read_text())
    assert list(ours)[:5] == [
        "## 1. Commands",
        "## 2. Telemetry event (JSON, one per LLM call)",
        "## 3. Outputs",
        "## 4. Network surface",
        "## 5. Settings",
    ]
    assert "## 6. Extensions" in ours
    for heading in list(ours)[:4]:
        assert ours[heading].strip(), heading


#: SHA-256 of sections 1-5 of the shared CONTRACT.md (heading, then body without trailing space).
FLOOR_SHA256 = "077e505cd3b0e8f7c26a544e93c9fbfc2f721d7326aa2394d66ac89a584c2b1f"


def test_the_floor_sections_are_the_shared_contract_word_for_word() -> None:
    ours = _sections(DOC.read_text())
    floor = "".join(h + "\n" + ours[h].rstrip() + "\n" for h in list(ours)[:5])
    assert hashlib.sha256(floor.encode()).hexdigest() == FLOOR_SHA256
