"""Build this repository's wheels and install them into fresh virtual environments (uv)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
UV = ROOT / ".tools" / "bin" / "uv"


def _uv(*args: str | Path, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(UV), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"uv {args[0]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def build_wheel(project: Path, out: Path) -> Path:
    """Build ``project``'s wheel into ``out``; its path."""
    assert UV.exists(), "run `make env` first (it installs uv into .tools/)"
    before = set(out.glob("*.whl"))
    _uv("build", "--wheel", "--out-dir", out, project)
    (wheel,) = set(out.glob("*.whl")) - before
    return wheel


def fresh_venv(where: Path, *wheels: Path) -> Path:
    """A new virtual environment at ``where`` with ``wheels`` installed; its python."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    _uv("venv", "--quiet", "--python", version, where)
    python = where / "bin" / "python"
    _uv("pip", "install", "--quiet", "--python", python, *wheels)
    return python
