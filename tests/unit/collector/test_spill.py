"""The on-disk spill buffer: order, bound, segments, crash safety, partial replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.records import OutRecord
from collector.spill import SpillBuffer, SpillFullError


def recs(start: int, n: int, topic: str = "t") -> list[OutRecord]:
    return [
        OutRecord(topic, f"app{i % 3}".encode(), f'{{"i": {i}}}'.encode(), [("reason", b"r")])
        for i in range(start, start + n)
    ]


def drain(buffer: SpillBuffer) -> list[OutRecord]:
    out = []
    while (oldest := buffer.oldest()) is not None:
        seq, records = oldest
        out.extend(records)
        buffer.remove(seq)
    return out


def test_records_come_back_in_append_order_across_segments(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=100)
    for start in range(0, 50, 5):
        buffer.append(recs(start, 5))
    assert buffer.records == 50
    assert len(list(tmp_path.glob("*.spill"))) == 10  # each batch fills a 100-byte segment
    assert drain(buffer) == recs(0, 50)
    assert (buffer.empty, buffer.size_bytes, list(tmp_path.glob("*.spill"))) == (True, 0, [])


def test_appends_after_sealing_go_to_a_new_segment(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=1_000_000)
    buffer.append(recs(0, 3))
    seq, records = buffer.oldest()  # type: ignore[misc]
    buffer.append(recs(3, 2))  # while 0..2 are being replayed
    buffer.remove(seq)
    assert records == recs(0, 3)
    assert drain(buffer) == recs(3, 2)


def test_bound_refuses_a_whole_batch(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=300, segment_bytes=100)
    buffer.append(recs(0, 4))
    used = buffer.size_bytes
    with pytest.raises(SpillFullError, match="spill buffer full"):
        buffer.append(recs(4, 10))
    assert (buffer.size_bytes, buffer.records) == (used, 4)
    assert drain(buffer) == recs(0, 4)


def test_reopen_keeps_everything_and_cuts_a_torn_tail(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=150)
    buffer.append(recs(0, 3))
    buffer.append(recs(3, 3))
    newest = max(tmp_path.glob("*.spill"))
    intact = newest.stat().st_size
    with open(newest, "ab") as fh:  # a crash in the middle of the next append
        fh.write(b"\x00\x00\x01\x00\xde\xad")
    (tmp_path / "0000000000000009.tmp").write_bytes(b"half a rewrite")
    buffer.close()  # the crashed process is gone
    reopened = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=150)
    assert newest.stat().st_size == intact
    assert not list(tmp_path.glob("*.tmp"))
    reopened.append(recs(6, 2))  # appends continue after the recovered records
    assert drain(reopened) == recs(0, 8)


def test_corrupt_frame_ends_the_segment(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=1_000_000)
    buffer.append(recs(0, 3))
    path = next(tmp_path.glob("*.spill"))
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF  # flip a byte of the last record: its crc fails
    path.write_bytes(bytes(data))
    buffer.close()
    assert drain(SpillBuffer(tmp_path, 1_000_000, 1_000_000)) == recs(0, 2)


def test_rewrite_keeps_only_undelivered_records(tmp_path: Path) -> None:
    buffer = SpillBuffer(tmp_path, max_bytes=1_000_000, segment_bytes=1_000_000)
    buffer.append(recs(0, 5))
    seq, records = buffer.oldest()  # type: ignore[misc]
    buffer.rewrite(seq, records[3:])
    assert buffer.records == 2
    buffer.close()
    again = SpillBuffer(tmp_path, 1_000_000, 1_000_000)
    assert drain(again) == recs(3, 2)
    assert again.empty
