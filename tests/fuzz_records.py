"""Hypothesis strategies for telemetry records of every shape: valid, wild, broken (issue 16).

Shared by the decoder's fuzz tests and the live processor's: valid calls, contract-shaped
objects whose fields take every JSON type and extreme, and records broken below JSON (bad
UTF-8, NUL, deep nesting, oversized, cut, arbitrary bytes).
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "EXTREMES",
    "FIELDS",
    "T0_MS",
    "WILD",
    "bad_records",
    "byte_level_damage",
    "contract_objects",
    "encode",
    "nested",
    "valid_call",
]

T0_MS = 1_767_225_600_000  # 2026-01-01
FIELDS = (
    "kind",
    "event_id",
    "timestamp",
    "app",
    "task",
    "operation",
    "provider",
    "model",
    "latency_ms",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cost_usd",
    "status",
    "error_type",
    "finish_reason",
    "quality",
    "prompt_hash",
    "prompt_tokens_fixed",
    "config_version",
    "variant",
    "request_id",
    "user_id",
    "attributes",
    "shadow_model",
    "shadow_quality",
)


def valid_call(i: int) -> dict[str, Any]:
    """A valid llm_call event."""
    return {
        "event_id": f"e{i}",
        "timestamp": T0_MS + i,
        "app": f"app{i % 3}",
        "model": "m",
        "latency_ms": 10.0 + i,
        "input_tokens": i,
        "output_tokens": 1,
    }


def encode(value: Any) -> bytes:
    """JSON bytes; non-finite floats are not JSON, so they are written as huge literals."""
    text = json.dumps(value, allow_nan=True)
    return text.replace("-Infinity", "-1e999").replace("Infinity", "1e999").encode()


def nested(depth: int) -> Any:
    out: Any = 1
    for level in range(depth):
        out = [out] if level % 2 else {"k": out}
    return out


EXTREME_INTS = st.sampled_from(
    [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**63 + 1, 2**64, 2**64 + 1, -(2**63), 10**30]
)
EXTREME_FLOATS = st.sampled_from(
    [0.0, -0.0, 1e-320, 5e-324, 1e308, 1.79e308, -1e308, 1e15, math.inf, -math.inf, 0.5]
)
WEIRD_TEXT = st.sampled_from(
    [
        "",
        "\x00",
        "a\x00b",
        "NaN",
        "Infinity",
        "-Infinity",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "8999-12-31T23:59:59Z",
        "2026-01-01T00:00:00",
        "\ud83d\ude00",
        "x" * 600,
        "null",
    ]
)
LEAVES = (
    st.none()
    | st.booleans()
    | EXTREME_INTS
    | st.integers()
    | EXTREME_FLOATS
    | st.floats()
    | WEIRD_TEXT
    | st.text(max_size=12)
)
WILD = st.recursive(
    LEAVES,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
    max_leaves=5,
) | st.integers(min_value=30, max_value=40).map(nested)


@st.composite
def contract_objects(draw: st.DrawFn) -> bytes:
    """A valid event with some fields replaced by wild values (or removed)."""
    obj: dict[str, Any] = valid_call(draw(st.integers(0, 1000)))
    if draw(st.booleans()):
        obj["kind"] = "feedback"
        obj["request_id"] = "r"
        obj["quality"] = 0.5
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        if draw(st.integers(0, 5)) == 0:
            obj.pop(name, None)
        else:
            obj[name] = draw(WILD)
    return encode(obj)


@st.composite
def byte_level_damage(draw: st.DrawFn, max_bytes: int) -> bytes:
    """Records broken below the JSON level: bad UTF-8, raw NUL, deep nesting, size, cuts."""
    good = encode(valid_call(draw(st.integers(0, 1000))))
    kind = draw(st.integers(0, 6))
    if kind == 0:  # invalid UTF-8 inside a string
        junk = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
        return good.replace(b'"m"', b'"m' + junk + b'"', 1)
    if kind == 1:  # a raw control character or an escaped lone surrogate
        return good.replace(b'"m"', draw(st.sampled_from([b'"m\x00"', b'"\\ud800"'])), 1)
    if kind == 2:  # nested deeper than the attribute limit, or than the decoder's stack
        depth = draw(st.sampled_from([33, 40, 1200, 1500]))
        where = draw(st.sampled_from([b'"attributes":', b'"other":']))
        return good[:-1] + b"," + where + b"[" * depth + b"]" * depth + b"}"
    if kind == 3:  # over the size limit
        return good[:-1] + b',"attributes":{"pad":"' + b"x" * max_bytes + b'"}}'
    if kind == 4:  # cut anywhere
        return good[: draw(st.integers(0, len(good) - 1))]
    if kind == 5:  # arbitrary bytes
        return draw(st.binary(max_size=64))
    return b" " + good + b"\n"  # whitespace around a valid event


EXTREMES: tuple[Any, ...] = (
    None,
    True,
    -1,
    2**31,
    2**63 + 1,
    2**64 + 1,
    10**30,
    1.79e308,
    -1e308,
    math.inf,
    "",
    "\x00",
    "a\x00b",
    "NaN",
    "Infinity",
    "x" * 600,
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-01:00",
    [],
    {},
    [1, "a"],
    {"k": {"k": None}},
)
"""Every JSON type and the extremes a contract field can be given."""


def bad_records(rng: random.Random) -> list[bytes]:
    """Broken records of every shape (each field x every extreme, byte-level damage), shuffled.

    Not all are invalid: the caller keeps those the decoder rejects.
    """
    out = [
        encode({**valid_call(i), name: value})
        for name in FIELDS
        for i, value in enumerate(EXTREMES)
    ]
    for i, name in enumerate(("event_id", "app", "task", "model", "provider", "error_type")):
        good = encode({**valid_call(i), name: "s"})
        out.append(good.replace(b'"s"', b'"s\xff\xfe"'))  # invalid UTF-8 in a string
        out.append(good.replace(b'"s"', b'"s\\u0000"'))  # NUL in a stored field
    for depth in (33, 200, 1500):
        deep = b"[" * depth + b"]" * depth
        out.append(encode(valid_call(depth))[:-1] + b',"attributes":{"a":' + deep + b"}}")
        out.append(encode(valid_call(depth))[:-1] + b',"other":' + deep + b"}")
    for i in range(40):
        good = encode(valid_call(i))
        out.append(good[: rng.randrange(len(good))])  # cut anywhere
        out.append(rng.randbytes(rng.randrange(1, 80)))  # arbitrary bytes
    for i in range(10):  # pairs that are valid JSON only when joined with a comma
        first, second = encode(valid_call(i)), encode(valid_call(i + 100))
        cut = rng.randrange(1, len(second))
        out.extend([first + b"," + second[:cut], second[cut:]])
    rng.shuffle(out)
    return out
