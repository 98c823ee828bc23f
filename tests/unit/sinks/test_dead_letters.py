"""Dead letters: the original bytes and why; oversized records cut to fit, saying so."""

from __future__ import annotations

from sinks.dead_letters import (
    MAX_REASON_CHARS,
    REASON_HEADER,
    TRUNCATED_HEADER,
    dead_letter,
    dlq_producer_config,
)


def test_a_record_within_the_limit_keeps_its_bytes_and_gets_the_reason() -> None:
    msg = dead_letter(b"x" * 100, "not JSON: oops", "t", 2, 40, max_bytes=100)
    assert msg.value == b"x" * 100
    assert dict(msg.headers) == {
        REASON_HEADER: b"not JSON: oops",
        "source.topic": b"t",
        "source.partition": b"2",
        "source.offset": b"40",
    }


def test_a_record_over_the_limit_is_cut_with_a_header_naming_its_size() -> None:
    msg = dead_letter(b"y" * 101, "record too large", "t", 0, 1, max_bytes=100)
    assert msg.value == b"y" * 100
    assert dict(msg.headers)[TRUNCATED_HEADER] == b"101"


def test_a_long_reason_is_cut_and_any_text_encodes() -> None:
    msg = dead_letter(None, "r" * 5000, "t", 0, 1)
    reason = dict(msg.headers)[REASON_HEADER]
    assert reason == b"r" * (MAX_REASON_CHARS - 3) + b"..."
    assert msg.value is None
    odd = dead_letter(b"x", "bad \x00 \udc80", "t", 0, 1)  # NUL and a lone surrogate
    assert dict(odd.headers)[REASON_HEADER] == b"bad \x00 \\udc80"


def test_the_dlq_producer_takes_a_full_sized_record_and_its_headers() -> None:
    limit = 2 * 1024 * 1024
    assert int(dlq_producer_config(limit)["message.max.bytes"]) > limit + 4 * MAX_REASON_CHARS
