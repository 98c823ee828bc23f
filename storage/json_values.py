"""JSON for the database: finite numbers only.

PostgreSQL's ``json``/``jsonb`` refuse ``NaN`` and ``Infinity``, which Python's ``json`` writes
for non-finite floats. Every JSON column (insight and decision evidence, verdict checks, canary
summaries, ...) is written through :func:`dumps_finite`, set once as the engine's
``json_serializer``: a non-finite float is stored as ``null``.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["dumps_finite", "finite"]


def dumps_finite(value: Any) -> str:
    """``json.dumps`` that writes ``null`` where ``value`` holds NaN or ±Infinity."""
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:  # only non-finite floats make allow_nan=False fail
        return json.dumps(finite(value), allow_nan=False)


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (nested in dicts, lists, tuples) made ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
