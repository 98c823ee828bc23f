"""Deduplication by event id with an event-time TTL (`operators/dedup.py`)."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import dedup
from operators.dedup import DedupState

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_sighting_then_duplicates_within_ttl_are_dropped() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("a", at(0)) is True
    assert state.first_sighting("a", at(0)) is False
    assert state.first_sighting("a", at(10)) is False
    assert state.first_sighting("a", at(59.999)) is False
    assert state.first_sighting("b", at(30)) is True
    assert state.first_sighting("b", at(31)) is False
    assert len(state) == 2


def test_same_id_after_the_ttl_is_accepted_again() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("a", at(0)) is True
    assert state.first_sighting("b", at(61)) is True  # event time moves past a's TTL
    assert state.first_sighting("a", at(61)) is True
    # ...and is remembered again from its new sighting.
    assert state.first_sighting("a", at(62)) is False
    assert state.first_sighting("a", at(120)) is False
    assert state.first_sighting("a", at(121.001)) is True


def test_the_duplicate_itself_can_advance_time_past_the_ttl() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("a", at(0)) is True
    assert state.first_sighting("a", at(60.001)) is True


def test_expiry_happens_exactly_one_ttl_after_the_event() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("a", at(0)) is True
    assert state.first_sighting("a", at(60) - timedelta(microseconds=1)) is False
    assert state.first_sighting("a", at(60)) is True


def test_late_events_within_the_ttl_are_still_deduplicated() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("a", at(30)) is True
    assert state.first_sighting("b", at(50)) is True
    assert state.first_sighting("a", at(10)) is False  # a late copy of a
    assert state.first_sighting("c", at(0)) is True  # late, but within the TTL of the newest
    assert state.first_sighting("c", at(55)) is False
    assert len(state) == 3


def test_events_older_than_the_ttl_are_accepted_and_not_remembered() -> None:
    state = DedupState(TTL)
    assert state.first_sighting("new", at(1000)) is True
    assert state.first_sighting("old", at(1000 - 61)) is True
    assert state.first_sighting("old", at(1000 - 61)) is True
    assert len(state) == 1


def test_distinct_keys_per_id() -> None:
    state = DedupState(TTL)
    ids = [f"e{i}" for i in range(100)]
    assert [state.first_sighting(i, at(0)) for i in ids] == [True] * 100
    assert [state.first_sighting(i, at(1)) for i in ids] == [False] * 100
    assert len(state) == 100


def test_state_stays_bounded_by_the_ttl_on_a_long_stream() -> None:
    state = DedupState(TTL)
    largest = 0
    n = 10_000  # one unique id per second: ~166 TTLs
    for i in range(n):
        assert state.first_sighting(f"id-{i}", at(i)) is True
        largest = max(largest, len(state))
    # Only the ids of the last TTL are held: times n-60 .. n-1.
    assert len(state) == 60
    assert largest == 60
    assert state.ttl == TTL
    # Held ids: those of the last TTL plus at most one slice (1/16 of the TTL) not yet dropped.
    assert 60 <= state.stored() <= 60 + 60 // 16 + 1
    assert state.first_sighting(f"id-{n - 60}", at(n - 1)) is False  # still remembered
    assert state.first_sighting(f"id-{n - 61}", at(n - 1)) is True  # forgotten after its TTL
    # The recovery snapshot stays small as well.
    assert len(pickle.dumps(state)) < 10_000


def test_state_stays_bounded_with_many_duplicates_per_id() -> None:
    state = DedupState(TTL)
    for i in range(5_000):
        state.first_sighting(f"id-{i // 10}", at(i / 10))  # ten copies within one second
    assert len(state) <= 60
    assert state.stored() <= 60 + 60 // 16 + 1


def test_pickle_round_trip_keeps_behaviour() -> None:
    state = DedupState(TTL)
    for i in range(10):
        state.first_sighting(f"e{i}", at(i))
    restored = pickle.loads(pickle.dumps(state))
    assert isinstance(restored, DedupState)
    assert restored.ttl == TTL
    assert len(restored) == 10
    assert restored.first_sighting("e3", at(20)) is False
    assert restored.first_sighting("fresh", at(20)) is True
    # Expiry continues from the restored event time: e0 expires at 60, e9 at 69.
    assert restored.first_sighting("e0", at(65)) is True
    assert restored.first_sighting("e9", at(65)) is False
    # The copy is independent of the original.
    assert state.first_sighting("fresh", at(20)) is True
    assert state.first_sighting("e0", at(20)) is False
    assert len(state) == 11


def test_pickle_of_an_empty_state() -> None:
    restored = pickle.loads(pickle.dumps(DedupState(timedelta(minutes=5))))
    assert len(restored) == 0
    assert restored.ttl == timedelta(minutes=5)
    assert restored.first_sighting("a", T0) is True
    assert restored.first_sighting("a", T0) is False


def test_event_times_in_other_offsets_compare_as_instants() -> None:
    from datetime import timezone

    state = DedupState(TTL)
    plus2 = timezone(timedelta(hours=2))
    assert state.first_sighting("a", T0.astimezone(plus2)) is True
    assert state.first_sighting("a", at(30)) is False


ids = st.sampled_from([f"id{i}" for i in range(12)]) | st.text(min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(ids, min_size=1, max_size=80),
    st.lists(st.integers(min_value=0, max_value=59_999), min_size=80, max_size=80),
    st.integers(min_value=0, max_value=10**9),
)
def test_within_one_ttl_accepted_ids_are_the_first_occurrences_in_order(
    event_ids: list[str], offsets_ms: list[int], start_ms: int
) -> None:
    start = T0 + timedelta(milliseconds=start_ms)
    times = [start + timedelta(milliseconds=ms) for ms in sorted(offsets_ms)[: len(event_ids)]]
    state = DedupState(TTL)
    accepted = [i for i, t in zip(event_ids, times, strict=True) if state.first_sighting(i, t)]
    assert accepted == list(dict.fromkeys(event_ids))
    assert len(state) == len(set(event_ids))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(ids, st.integers(min_value=0, max_value=59_999)),
        min_size=1,
        max_size=80,
    )
)
def test_any_order_within_one_ttl_span_also_keeps_first_occurrences(
    events: list[tuple[str, int]],
) -> None:
    state = DedupState(TTL)
    accepted = [i for i, ms in events if state.first_sighting(i, T0 + timedelta(milliseconds=ms))]
    assert accepted == list(dict.fromkeys(i for i, _ in events))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        # Quarter seconds are exact in floating point, so the TTL boundary is exact too.
        st.tuples(ids, st.integers(min_value=0, max_value=2_400).map(lambda q: q * 250)),
        max_size=120,
    )
)
def test_matches_a_reference_model_for_in_order_streams(events: list[tuple[str, int]]) -> None:
    """Reference: with non-decreasing times, an id is a duplicate iff it was last *accepted*
    less than one TTL before the current event time."""
    ttl_ms = 60_000
    state = DedupState(TTL)
    last_accepted: dict[str, int] = {}
    for event_id, ms in sorted(events, key=lambda e: e[1]):
        previous = last_accepted.get(event_id)
        expected = previous is None or ms - previous >= ttl_ms
        assert state.first_sighting(event_id, T0 + timedelta(milliseconds=ms)) is expected
        if expected:
            last_accepted[event_id] = ms
        assert len(state) == sum(1 for t in last_accepted.values() if ms - t < ttl_ms)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(min_value=0, max_value=15),
                st.sampled_from([0, 1, 5, 20, 40]),  # how far time moves on
                st.sampled_from([0, 0, 0, 30, 120]),  # how late this event is
            ),
            min_size=1,
            max_size=8,
        ),
        max_size=40,
    ),
    st.lists(st.booleans(), max_size=40),
)
def test_batches_out_of_order_and_snapshots_match_the_per_event_rule(
    batches: list[list[tuple[int, int, int]]], snapshots: list[bool]
) -> None:
    """Reference for any order: an id is a duplicate iff the newest time it was remembered at
    plus the TTL is after the newest event time so far; it is remembered when accepted within
    the TTL of that newest time. Batches, seals of old slices and snapshot round trips between
    batches never change an answer."""
    ttl_s = 100.0
    state = DedupState(timedelta(seconds=ttl_s))
    remembered: dict[str, float] = {}
    newest = float("-inf")
    clock = 0.0
    for n, batch in enumerate(batches):
        ids, times = [], []
        for key, step, lateness in batch:
            clock += step
            ids.append(f"e{key}")
            times.append(clock - lateness)
        if n < len(snapshots) and snapshots[n]:
            state = pickle.loads(pickle.dumps(state))
        expected = []
        for i, (event_id, at) in enumerate(zip(ids, times, strict=True)):
            newest = max(newest, at)
            previous = remembered.get(event_id)
            if previous is not None and previous + ttl_s > newest:
                continue
            expected.append(i)
            if at + ttl_s > newest:
                remembered[event_id] = at
        assert state.first_sightings(ids, times) == expected


def test_the_sorted_tier_behind_a_full_dict_answers_like_the_dict() -> None:
    """With the dict tier holding 3 ids, most ids live in the open slice's sorted array: the
    reference models above still hold (every batch, seal and snapshot)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "OPEN_LIMIT", 3)
        test_batches_out_of_order_and_snapshots_match_the_per_event_rule()
        test_matches_a_reference_model_for_in_order_streams()


def test_false_duplicates_come_only_from_hash_collisions_at_the_stated_rate() -> None:
    """A new id is dropped iff its hash equals a remembered id's: with the hash cut to 16 bits,
    the drop rate of new ids against n remembered ones is the chance of a collision
    (1 - (1 - 2**-16)**d for d distinct remembered hashes, at most n / 2**16). 64-bit hashes
    give n / 2**64 by the same rule. The count is checked within 6 standard deviations of the
    binomial (a false failure below 1e-8)."""
    n, probes = 3_000, 20_000
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dedup, "_hash", lambda data: xxhash.xxh3_64_intdigest(data) & 0xFFFF)
        patch.setattr(dedup, "OPEN_LIMIT", 1_000)  # every tier holds some of the ids
        state = DedupState(timedelta(hours=1))
        base = [f"kept-{i}" for i in range(n)]
        remembered: set[int] = set()
        for i in range(0, n, 500):
            hashes = dedup._hashes(base[i : i + 500])
            kept = state.first_sightings(base[i : i + 500], [100.0] * 500)
            assert len(kept) == len(set(hashes) - remembered)
            remembered.update(hashes)
        # Probes older than the TTL are judged but never remembered: n stays fixed.
        dropped = 0
        for i in range(0, probes, 1_000):
            ids = [f"probe-{j}" for j in range(i, i + 1_000)]
            kept_now = set(state.first_sightings(ids, [-4_000.0] * 1_000))
            expected = {k for k, h in enumerate(dedup._hashes(ids)) if h not in remembered}
            assert kept_now == expected
            dropped += 1_000 - len(kept_now)
    p = 1 - (1 - 2**-16) ** len(remembered)
    assert p <= n / 2**16
    sd = math.sqrt(probes * p * (1 - p))
    assert abs(dropped - probes * p) < 6 * sd
