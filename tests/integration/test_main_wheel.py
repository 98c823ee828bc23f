"""``llmopt simulate`` from the installed wheel: the simulator ships, bench/ does not.

Both wheels (the optimizer and its client SDK) are built and installed into a fresh virtual
environment; ``llmopt simulate`` runs from outside the repository, so nothing can come from the
working tree.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.wheels import ROOT, build_wheel, fresh_venv

pytestmark = pytest.mark.integration


def test_llmopt_simulate_runs_from_the_installed_wheel(tmp_path: Path) -> None:
    client = build_wheel(ROOT / "client", tmp_path)
    main = build_wheel(ROOT, tmp_path)
    names = zipfile.ZipFile(main).namelist()
    assert "simulator/fleet.py" in names
    assert "simulator/example-scenario.toml" in names
    assert not [n for n in names if n.startswith(("bench/", "llmopt_client/", "tests/"))]
    python = fresh_venv(tmp_path / "venv", main, client)
    llmopt = python.parent / "llmopt"
    work = tmp_path / "run"
    work.mkdir()
    env = {"PATH": str(python.parent), "HOME": str(tmp_path), "LLMOPT_STORAGE__DATA_DIR": "var"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(llmopt), *args], cwd=work, env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip

    helped = run("simulate", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "--scenario" in helped.stdout
    done = run(
        "simulate", "--target", "inprocess", "--scenario", "cheaper-good", "--duration", "20m",
        "--speed", "0", "--seed", "3", "--report", "report.json",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((work / "report.json").read_text())
    (task,) = report["tasks"]
    assert report["summary"]["events"] == task["calls"] > 0
    assert task["canary_calls"] > 0  # the SDK's routing put calls on the canary it read
    assert "shop/classify" in done.stdout + done.stderr
