"""Which calls a canary serves: consistent hashing on the request id.

This is the one rule the optimizer's judge assumes. A request id maps to a fixed point in
[0, 1) (the first 8 bytes of its BLAKE2b digest); the canary serves the calls whose point is
below its weight. The same request is always on the same side, and raising the weight
(1 → 5 → 25 %) only moves calls from the baseline to the canary, never back.
"""

from __future__ import annotations

from hashlib import blake2b

__all__ = ["bucket", "serves_canary"]

_SCALE = float(2**64)


def bucket(request_id: str) -> float:
    """The request's fixed point in [0, 1)."""
    return int.from_bytes(blake2b(request_id.encode(), digest_size=8).digest(), "big") / _SCALE


def serves_canary(request_id: str, weight: float) -> bool:
    """Whether the canary of ``weight`` serves this request."""
    return weight > 0 and bucket(request_id) < weight
