"""Generate the Python code of the ``llmopt.v1`` protos: ``python -m proto.generate [OUT_DIR]``.

``make proto`` runs this. It compiles every ``proto/llmopt/v1/*.proto`` with the ``protoc`` that
``grpcio-tools`` bundles, plus the ``mypy-protobuf`` plugins, into ``*_pb2.py``,
``*_pb2_grpc.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.pyi`` next to the sources (or under ``OUT_DIR``,
keeping the ``llmopt/v1/`` layout, which is how a test checks the committed files are current).

The include root is ``proto/``, so the protos import each other as ``llmopt/v1/common.proto``
(what any other client of these protos uses too). ``protoc`` then writes Python imports such as
``from llmopt.v1 import common_pb2``; since ``proto`` is the top-level package of this repository,
they are rewritten to ``from proto.llmopt.v1 import common_pb2``, so the generated modules import
as ``proto.llmopt.v1.metrics_pb2`` with the repository root on ``sys.path``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

__all__ = [
    "PROTO_ROOT",
    "GenerationError",
    "generate",
    "generated_files",
    "main",
    "proto_sources",
]

PROTO_ROOT = Path(__file__).resolve().parent
"""The include root of the protos: ``proto/`` of this repository."""

_PACKAGE_DIR = Path("llmopt") / "v1"
_GENERATED_SUFFIXES = ("_pb2.py", "_pb2_grpc.py", "_pb2.pyi", "_pb2_grpc.pyi")
# `llmopt.v1` where it names a Python module (an import, or the module name handed to the
# protobuf builder), never where it names the proto package ('/llmopt.v1.MetricsService/...').
_MODULE_REF = re.compile(r"(?<![\w./])llmopt\.v1(?= import |\.\w+_pb2(?:_grpc)?\b)")
_PYTHON_PREFIX = "proto."


class GenerationError(RuntimeError):
    """``protoc`` or one of its plugins failed."""


def proto_sources(root: Path = PROTO_ROOT) -> list[Path]:
    """The ``.proto`` files to compile, relative to ``root`` and sorted."""
    return sorted(p.relative_to(root) for p in (root / _PACKAGE_DIR).glob("*.proto"))


def generated_files(out_dir: Path) -> list[Path]:
    """The generated files under ``out_dir``, relative to it and sorted."""
    package = out_dir / _PACKAGE_DIR
    return sorted(
        p.relative_to(out_dir)
        for p in package.iterdir()
        if p.is_file() and p.name.endswith(_GENERATED_SUFFIXES)
    )


def _plugin(name: str) -> Path:
    """A protoc plugin installed next to the running interpreter (``.venv/bin``)."""
    bin_dir = Path(sys.executable).parent
    for candidate in (bin_dir / name, bin_dir / f"{name}.exe"):
        if candidate.exists():
            return candidate
    raise GenerationError(
        f"protoc plugin {name} is not installed next to {sys.executable}; "
        "install the dev dependencies (mypy-protobuf) with `uv sync`"
    )


def _well_known_types() -> str:
    """The include directory of ``google/protobuf/*.proto`` shipped with grpcio-tools."""
    return str(resources.files("grpc_tools") / "_proto")


def _rewrite_imports(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    rewritten = _MODULE_REF.sub(f"{_PYTHON_PREFIX}llmopt.v1", text)
    if rewritten != text:
        path.write_bytes(rewritten.encode("utf-8"))


def generate(out_dir: Path = PROTO_ROOT, root: Path = PROTO_ROOT) -> list[Path]:
    """Compile the protos under ``root`` into ``out_dir``.

    Args:
        out_dir: Where the generated files go, under ``llmopt/v1/``; default next to the sources.
        root: The include root holding ``llmopt/v1/*.proto``.

    Returns:
        The generated files, relative to ``out_dir``.

    Raises:
        GenerationError: When there is nothing to compile or ``protoc`` fails.
    """
    sources = proto_sources(root)
    if not sources:
        raise GenerationError(f"no .proto files under {root / _PACKAGE_DIR}")
    (out_dir / _PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    # Start clean, so that the code of a removed .proto does not linger.
    for stale in generated_files(out_dir):
        (out_dir / stale).unlink()
    out = str(out_dir)
    args = [
        "grpc_tools.protoc",
        f"--proto_path={root}",
        f"--proto_path={_well_known_types()}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *(p.as_posix() for p in sources),
    ]
    code = protoc.main(args)
    if code != 0:
        raise GenerationError(f"protoc failed with exit code {code}: {' '.join(args)}")
    files = generated_files(out_dir)
    for path in files:
        _rewrite_imports(out_dir / path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m proto.generate", description="Generate Python code from the protos."
    )
    parser.add_argument(
        "out_dir",
        nargs="?",
        type=Path,
        default=PROTO_ROOT,
        help="output directory (default: next to the .proto files)",
    )
    options = parser.parse_args(argv)
    try:
        files = generate(options.out_dir)
    except GenerationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in files:
        print(options.out_dir / path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
