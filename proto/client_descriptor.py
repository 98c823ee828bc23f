"""Write the SDK's copy of ``config.proto``'s descriptor: ``python -m proto.client_descriptor``.

The SDK (``client/llmopt_client``) must install without this package, and cannot import the
generated ``config_pb2`` next to the server's in one process anyway (both would register
``llmopt/v1/config.proto`` in protobuf's default pool). It carries the serialized file
descriptor instead and builds the message classes in a pool of its own
(:mod:`llmopt_client.grpc_watch`). Run this after changing ``config.proto`` (``make proto``
does); a test checks the copy is current.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

from proto.llmopt.v1 import config_pb2

__all__ = ["TARGET", "render"]

TARGET = Path(__file__).resolve().parents[1] / "client" / "llmopt_client" / "_config_descriptor.py"


def render() -> str:
    """The module's source for the current ``config_pb2``."""
    encoded = base64.b64encode(config_pb2.DESCRIPTOR.serialized_pb).decode()
    body = "\n".join(f'    "{line}"' for line in textwrap.wrap(encoded, 96))
    return (
        '"""The serialized descriptor of ``llmopt/v1/config.proto`` (generated; do not edit).\n\n'
        "Regenerate after changing the proto: ``.venv/bin/python -m proto.client_descriptor``; a"
        " test\nchecks it equals the server's (``proto.llmopt.v1.config_pb2``).\n"
        '"""\n\n'
        f"CONFIG_PROTO = (\n{body}\n)\n"
    )


if __name__ == "__main__":
    TARGET.write_text(render())
