"""The direction of dependencies (DESIGN.md): nothing imports upward.

``core`` at the bottom; ``storage``, ``operators``, ``collector`` (which uses ``storage.kafka``)
and ``integrations`` on it;
``rollout`` (the rollout domain) on those; ``sinks`` and ``api`` above; ``flows`` and
``orchestrator`` and ``simulator`` at the top. The client SDK (``client/llmopt_client``) is a
distribution of its own: it imports none of the server's packages. Read from the source with
``ast``, lazy imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parents[2]
BASE = {"core"}
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "storage": BASE,
    "operators": BASE,
    "collector": BASE | {"storage"},  # storage.kafka: topic creation and the broker ping
    "integrations": BASE,
    "rollout": BASE | {"storage", "operators", "integrations"},
    "sinks": BASE | {"storage", "operators", "integrations", "rollout", "collector"},
    "api": BASE | {"storage", "operators", "integrations", "rollout", "collector"},
    "flows": BASE | {"storage", "operators", "integrations", "rollout", "collector", "sinks"},
}
PACKAGES = {*ALLOWED, "orchestrator", "simulator", "proto", "bench"}


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_package_imports_upward() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts and package == "storage":
                continue  # Alembic's env.py and revisions import only storage and core anyway
            upward = (_imported(path) & PACKAGES) - allowed - {package, "proto"}
            if upward:
                wrong.append(f"{path.relative_to(ROOT)} imports {sorted(upward)}")
    assert wrong == []


def test_the_client_sdk_imports_nothing_of_the_server() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {sorted(_imported(path) & PACKAGES)}"
        for path in sorted((ROOT / "client" / "llmopt_client").rglob("*.py"))
        if _imported(path) & PACKAGES
    ]
    assert wrong == []


def test_the_map_covers_every_layer_below_the_top() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages - {"tests"} == PACKAGES


QUERY_BUILDERS = {"select", "func", "text", "insert", "update", "delete", "and_", "or_"}


def test_sql_is_written_only_in_storage() -> None:
    """Queries live in ``storage/`` repositories; other packages call them."""
    wrong = []
    for package in PACKAGES - {"storage", "bench"}:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "sqlalchemy"
                ):
                    names = {a.name for a in node.names} & QUERY_BUILDERS
                    if names:
                        wrong.append(f"{path.relative_to(ROOT)} imports {sorted(names)}")
    assert wrong == []
