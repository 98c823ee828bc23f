"""Resume positions of the Kafka batch source: recreated partitions are recognised, others kept."""

from __future__ import annotations

import pickle

from confluent_kafka import KafkaError, Message
from hypothesis import given
from hypothesis import strategies as st

from flows.kafka_batches import split_poll
from flows.partition_position import PartitionPosition, check_resume, record_mark


def test_a_poll_with_partition_end_and_errors_splits_without_a_pending_exception() -> None:
    """KafkaError == None used to leave a TypeError set: a SystemError later (the SIGINT race)."""
    poll = [
        Message(topic="t", partition=0, offset=7, value=b"a"),
        Message(error=KafkaError(KafkaError._TRANSPORT)),
        Message(topic="t", partition=0, offset=8, value=None),
        Message(error=KafkaError(KafkaError._PARTITION_EOF)),
    ]
    for _ in range(20):  # before and after the interpreter specialises the function
        offsets, values, errors, eof = split_poll(poll)
        assert (offsets, values, eof) == ([7, 8], [b"a", None], True)
        assert len(errors) == 1
        assert "_TRANSPORT" in errors[0]
        assert [1, None].count(None) == 1  # a pending exception would raise SystemError here
    assert split_poll([]) == ([], [], [], False)


def test_snapshots_round_trip_and_old_integer_snapshots_resume_without_a_mark() -> None:
    position = PartitionPosition(42, record_mark(b"x"), 3, 1, 17)
    state = pickle.loads(pickle.dumps(position.state()))
    assert PartitionPosition.from_state(state) == position
    assert PartitionPosition.from_state(42) == PartitionPosition(42)
    assert PartitionPosition.from_state(-1001) == PartitionPosition(0)  # OFFSET_BEGINNING
    assert PartitionPosition.from_state(None) == PartitionPosition()


def test_the_marked_record_read_again_is_dropped_and_the_partition_kept() -> None:
    position = PartitionPosition(10, record_mark(b"last"))
    assert position.verify_from == 9
    verdict = check_resume(position, 9, b"last")
    assert (verdict.recreated, verdict.drop) == (False, 1)


def test_another_record_at_the_marked_offset_means_a_recreated_partition() -> None:
    verdict = check_resume(PartitionPosition(10, record_mark(b"last")), 9, b"other")
    assert verdict.recreated
    assert "offset 9" in verdict.reason


def test_records_before_the_asked_offset_mean_the_old_offset_is_gone() -> None:
    for position in (PartitionPosition(10, record_mark(b"last")), PartitionPosition(10)):
        verdict = check_resume(position, 0, b"anything")
        assert verdict.recreated
        assert "beyond" in verdict.reason


@given(
    offset=st.integers(0, 10**12),
    first=st.integers(0, 10**12),
    old=st.binary(max_size=8),
    new=st.binary(max_size=8),
    marked=st.booleans(),
)
def test_a_partition_is_recreated_exactly_when_the_old_position_does_not_hold(
    offset: int, first: int, old: bytes, new: bytes, marked: bool
) -> None:
    position = PartitionPosition(offset, record_mark(old) if marked and offset else None)
    verdict = check_resume(position, first, new)
    start = position.verify_from
    if start is None or first > start:  # nothing to check (fresh, or trimmed by retention)
        assert not verdict.recreated
        assert verdict.drop == 0
    elif first < start:
        assert verdict.recreated
    elif position.mark is None:
        assert not verdict.recreated
        assert verdict.drop == 0
    else:
        assert verdict.recreated == (old != new)
        assert verdict.drop == (0 if verdict.recreated else 1)
