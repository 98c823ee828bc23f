"""Spill folders have one owner each, across real processes; orphans are taken over or adopted."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from collector.records import OutRecord
from collector.spill import SpillBuffer, SpillDirectoryInUseError
from collector.spill_owner import adopt_orphans, claim

MAX, SEGMENT = 10_000_000, 1_000

# A process that claims a folder under ROOT, spills N records tagged TAG, reports its folder
# and waits for a line on stdin (or a signal) before it ends.
CHILD = """
import sys
from pathlib import Path
from collector.records import OutRecord
from collector.spill_owner import claim
root, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
buffer = claim(root, 10_000_000, 1_000)
buffer.append([OutRecord("t", None, f"{tag}-{i}".encode(), []) for i in range(n)])
print(buffer.directory, flush=True)
sys.stdin.readline()
"""


def recs(tag: str, n: int) -> list[OutRecord]:
    return [OutRecord("t", None, f"{tag}-{i}".encode(), []) for i in range(n)]


def values(buffer: SpillBuffer) -> list[bytes]:
    out: list[bytes] = []
    while (oldest := buffer.oldest()) is not None:
        seq, records = oldest
        out.extend(r.value for r in records if r.value is not None)
        buffer.remove(seq)
    return out


class Child:
    def __init__(self, root: Path, tag: str, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), tag, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()  # blocks until it owns its folder
        assert line, f"child exited with {self.proc.wait(60)}"
        self.folder = Path(line)

    def crash(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(60) == -signal.SIGKILL

    def end(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        self.proc.stdin.close()
        assert self.proc.wait(60) == 0


def test_a_second_buffer_on_a_folder_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    first = SpillBuffer(tmp_path, MAX, SEGMENT)
    with pytest.raises(SpillDirectoryInUseError):
        SpillBuffer(tmp_path, MAX, SEGMENT)
    first.append(recs("a", 3))
    first.close()
    second = SpillBuffer(tmp_path, MAX, SEGMENT)
    assert values(second) == [f"a-{i}".encode() for i in range(3)]


def test_a_dropped_buffer_gives_its_folder_up(tmp_path: Path) -> None:
    SpillBuffer(tmp_path, MAX, SEGMENT).append(recs("a", 1))  # never closed, collected at once
    assert values(SpillBuffer(tmp_path, MAX, SEGMENT)) == [b"a-0"]


def test_another_process_cannot_own_a_live_processs_folder(tmp_path: Path) -> None:
    child = Child(tmp_path, "child", 5)
    try:
        with pytest.raises(SpillDirectoryInUseError):
            SpillBuffer(child.folder, MAX, SEGMENT)
        mine = claim(tmp_path, MAX, SEGMENT)
        assert mine.directory != child.folder
        assert adopt_orphans(tmp_path, mine) == 0  # its owner lives: nothing is taken
        assert mine.empty
    finally:
        child.end()


def test_concurrent_processes_each_get_a_folder_of_their_own(tmp_path: Path) -> None:
    children = [Child(tmp_path, f"c{i}", 2) for i in range(4)]
    try:
        assert len({c.folder for c in children}) == 4
    finally:
        for child in children:
            child.end()


def test_a_restarted_worker_takes_over_the_folder_of_the_one_that_crashed(tmp_path: Path) -> None:
    crashed = Child(tmp_path, "before", 7)
    crashed.crash()
    restarted = claim(tmp_path, MAX, SEGMENT)  # the next process to start
    assert restarted.directory == crashed.folder
    assert values(restarted) == [f"before-{i}".encode() for i in range(7)]


def test_orphans_of_workers_that_are_gone_are_adopted_by_a_live_one(tmp_path: Path) -> None:
    survivor = Child(tmp_path, "alive", 1)
    gone = [Child(tmp_path, f"gone{i}", 3) for i in range(2)]
    for child in gone:
        child.crash()
    try:
        mine = claim(tmp_path, MAX, SEGMENT)  # takes over one orphan ...
        assert mine.directory in {c.folder for c in gone}
        assert adopt_orphans(tmp_path, mine) == 3  # ... and adopts the other
        got = sorted(values(mine))
        assert got == sorted(f"gone{i}-{j}".encode() for i in range(2) for j in range(3))
        remaining = {p for p in tmp_path.iterdir() if p.is_dir()}
        assert remaining == {survivor.folder, mine.directory}  # the adopted folder is removed
    finally:
        survivor.end()


def test_segments_of_the_single_folder_layout_are_adopted(tmp_path: Path) -> None:
    old = SpillBuffer(tmp_path, MAX, SEGMENT)  # an older version spilled into the root itself
    old.append(recs("legacy", 4))
    old.close()
    mine = claim(tmp_path, MAX, SEGMENT)
    assert adopt_orphans(tmp_path, mine) == 4
    assert not list(tmp_path.glob("*.spill"))
    assert values(mine) == [f"legacy-{i}".encode() for i in range(4)]


def test_a_full_buffer_postpones_adoption_and_keeps_the_orphan(tmp_path: Path) -> None:
    orphan = Child(tmp_path, "big", 50)
    orphan.crash()
    mine = SpillBuffer(tmp_path / "owner-9", 1_024, SEGMENT)  # too small for the orphan
    moved = adopt_orphans(tmp_path, mine)
    assert moved < 50
    assert mine.records == moved
    kept = SpillBuffer(orphan.folder, MAX, SEGMENT)  # the rest stays, for a later adoption
    assert len(values(kept)) + moved == 50
