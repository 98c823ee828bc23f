"""Debian's Chromium driven headless by Playwright's Python package, for the console's tests.

Never Playwright's own browser download (it cannot work here): ``executable_path`` is the
system's ``/usr/bin/chromium``, installed by ``scripts/install-chromium.sh`` when missing (the
test fails with that script's message when it cannot be installed; it is never skipped).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts" / "console"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def ensure_chromium() -> Path:
    """``/usr/bin/chromium``, installed first when missing (an AssertionError when impossible)."""
    if not CHROMIUM.exists():
        done = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-chromium.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, (
            "the console's browser tests need Debian's Chromium at /usr/bin/chromium: "
            + done.stderr.strip()
        )
    assert CHROMIUM.exists(), "scripts/install-chromium.sh ran but /usr/bin/chromium is missing"
    return CHROMIUM


@contextmanager
def chromium(user_data_dir: Path) -> Iterator[BrowserContext]:
    """A headless Chromium session with a fresh, empty user-data dir (its own cookies)."""
    path = ensure_chromium()
    user_data_dir.mkdir(parents=True, exist_ok=False)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(user_data_dir),
            executable_path=str(path),
            headless=True,
            args=FLAGS,
            timeout=120_000,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def shot_path(name: str) -> Path:
    """Where the screenshot ``name`` goes: ``var/test-artifacts/console/NAME.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def shot(page: object, name: str) -> Path:
    """Save a full-page screenshot under ``var/test-artifacts/console/`` and return its path."""
    out = shot_path(name)
    page.screenshot(path=str(out), full_page=True)  # type: ignore[attr-defined]
    return out
