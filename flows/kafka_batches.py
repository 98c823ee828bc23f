"""A Kafka source whose items are whole consumer batches (one item per poll, not per record).

Bytewax's own Kafka source emits one item per record, and every operator step then costs
microseconds per record; the processor works on batches instead. Each Kafka partition is one
Bytewax partition; its resume state is the next offset, so recovery replays from there.
"""

from __future__ import annotations

import gc
import logging
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from itertools import repeat
from operator import is_not

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from typing_extensions import override

from flows.partition_position import (
    PartitionPosition,
    PositionState,
    check_resume,
    record_mark,
)
from storage.kafka import ensure_topics

__all__ = ["CONSUMER_TUNING", "KafkaBatchSource", "RecordBatch", "split_poll"]

# stdlib logging: the dataflow process does not load structlog.
_log = logging.getLogger(__name__)

# librdkafka waits fetch.queue.backoff.ms (default 1000 ms) before refilling a queue it
# considers full: with the default, throughput halves with 1 s stalls.
CONSUMER_TUNING: dict[str, str | int | bool] = {
    "fetch.queue.backoff.ms": 5,
    # Prefetch bounds: librdkafka holds whole fetched record batches until their last record is
    # consumed; with its defaults (64 MB queue, 50 MB fetches) four partitions held ~250 MB per
    # process. Smaller fetches read 1M events as fast and hold ~170 MB (measured 2026-11-29;
    # `git log -p bench/README.md`).
    "queued.max.messages.kbytes": 16384,
    "fetch.max.bytes": 1024 * 1024,
    "max.partition.fetch.bytes": 256 * 1024,
    "fetch.min.bytes": 1,
    # An empty partition answers a fetch after this wait: 500 ms by default, which delays the
    # end of a bounded read (and start-up) by half a second per partition round.
    "fetch.wait.max.ms": 100,
}


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Records of one poll of one partition: values and their offsets, in order."""

    topic: str
    partition: int
    offsets: list[int]
    values: list[bytes | None]
    errors: list[str]  # consumer errors seen in this poll (not records)


def split_poll(messages: list[Message]) -> tuple[list[int], list[bytes | None], list[str], bool]:
    """Split one poll into record offsets and values, consumer errors, and partition end.

    Returns:
        ``(offsets, values, errors, eof)``: the records in order, the consumer errors (as text)
        and whether the poll reached the end of the partition.
    """
    errors: list[str] = []
    eof = False
    failures = list(map(Message.error, messages))
    # Identity, never ``==``: KafkaError compared with None leaves a TypeError pending (its
    # richcompare calls PyLong_AsLong(None)), which surfaced later as a SystemError in whatever
    # ran next (e.g. the signal handler of a graceful stop).
    if any(map(is_not, failures, repeat(None))):  # rare: partition end, or a consumer error
        for err in failures:
            if err is None:
                continue
            if err.code() == KafkaError._PARTITION_EOF:
                eof = True
            else:
                errors.append(str(err))
        messages = [m for m, err in zip(messages, failures, strict=True) if err is None]
    offsets: list[int] = list(map(Message.offset, messages))  # type: ignore[arg-type]
    values: list[bytes | None] = list(map(Message.value, messages))
    return offsets, values, errors, eof


class _Partition(StatefulSourcePartition[RecordBatch, PositionState]):
    def __init__(
        self,
        config: dict[str, str | int | bool],
        topic: str,
        partition: int,
        position: PartitionPosition,
        partitions_now: int | None,
        batch_size: int,
        stopping: Callable[[], bool],
    ) -> None:
        self._consumer = Consumer(config)
        self._stopping = stopping
        self._topic, self._partition = topic, partition
        self._position = position
        self._partitions_now = partitions_now
        self._offset = position.offset
        self._last: bytes | None = None  # value of the record at self._offset - 1, once read
        self._resets, self._reread = position.resets, position.reread
        self._reread_below = 0  # after a reset: records below this offset count as re-read
        self._verify = position.verify_from
        self._batch_size = batch_size
        self._eof = False
        if partitions_now is not None and position.partitions not in (None, partitions_now):
            _log.warning(
                "kafka topic %s now has %d partitions, %d when partition %d was last read",
                topic, partitions_now, position.partitions, partition,
            )  # fmt: skip
        start = OFFSET_BEGINNING if self._verify is None else self._verify
        self._consumer.assign([TopicPartition(topic, partition, start)])

    @override
    def next_batch(self) -> list[RecordBatch]:
        if self._eof or self._stopping():
            raise StopIteration
        # confluent-kafka's Message objects are tracked by the garbage collector: a batch of
        # them triggered ~7 young-generation collections that walked each message (~0.4 s per
        # million records). They are gone when this returns, so the collector sits it out.
        collecting = gc.isenabled()
        gc.disable()
        try:
            messages = self._consumer.consume(self._batch_size, 0.001)  # never stall the worker
            offsets, values, errors, eof = split_poll(messages)
            del messages
        finally:
            if collecting:
                gc.enable()
        self._eof |= eof
        if offsets and (self._verify is not None or offsets[0] < self._offset):
            offsets, values = self._resumed(offsets, values)
        elif self._eof and self._verify is not None:
            self._ended_while_verifying()
        if offsets:
            self._offset = offsets[-1] + 1
            self._last = values[-1]
            if self._reread_below:
                self._count_reread(offsets)
        if not offsets and not errors:
            return []
        return [RecordBatch(self._topic, self._partition, offsets, values, errors)]

    def _resumed(
        self, offsets: list[int], values: list[bytes | None]
    ) -> tuple[list[int], list[bytes | None]]:
        """Check the first records after a resume (or an offset reset while running)."""
        if self._verify is None:  # the consumer went back: the topic was recreated under us
            self._reset(f"offsets went back from {self._offset} to {offsets[0]}", restart=False)
            return offsets, values
        verdict = check_resume(self._position, offsets[0], values[0])
        self._verify = None
        if not verdict.recreated:
            return offsets[verdict.drop :], values[verdict.drop :]
        self._reset(verdict.reason, restart=True)
        return [], []

    def _ended_while_verifying(self) -> None:
        """The partition ended before its last read record came back: it no longer has it."""
        self._verify = None
        if self._position.mark is not None:
            self._reset("the partition no longer holds the records read before", restart=False)

    def _reset(self, reason: str, restart: bool) -> None:
        """Read the partition from its start again, and count it."""
        self._resets += 1
        self._reread_below = max(self._offset, self._position.offset)
        _log.warning(
            "kafka topic %s[%d] was recreated (%s): reading it again from its start "
            "(reset %d of this partition)",
            self._topic, self._partition, reason, self._resets,
        )  # fmt: skip
        self._offset, self._last = 0, None
        if restart:
            self._eof = False
            self._consumer.assign([TopicPartition(self._topic, self._partition, OFFSET_BEGINNING)])

    def _count_reread(self, offsets: list[int]) -> None:
        below = bisect_left(offsets, self._reread_below)
        self._reread += below
        if below < len(offsets):
            _log.warning(
                "kafka topic %s[%d]: %d records read again after the reset, which the old offset "
                "would have skipped",
                self._topic, self._partition, self._reread - self._position.reread,
            )  # fmt: skip
            self._reread_below = 0

    @override
    def next_awake(self) -> datetime | None:
        return None

    @override
    def snapshot(self) -> PositionState:
        mark = self._position.mark if self._last is None else record_mark(self._last)
        if self._offset == 0:
            mark = None
        return PartitionPosition(
            self._offset, mark, self._partitions_now, self._resets, self._reread
        ).state()

    @override
    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[RecordBatch, PositionState]):
    """Reads ``topic`` from the beginning (or the recovered positions), in batches.

    A recovered position is checked against the partition first: when the topic was recreated
    since (see :mod:`flows.partition_position`) the partition is read again from its start, and
    the reset is logged and counted in the snapshot.

    Args:
        brokers: ``host:port`` list.
        topic: The telemetry topic.
        tail: False stops each partition at its end (backfills, benchmarks, tests).
        batch_size: At most this many records per item.
        stopping: When it returns True every partition ends (a graceful stop, see
            :mod:`flows.stop`); its offset is in the snapshot, so a restart resumes there.
        ensure: Topics to create when missing (name → partitions), before the partitions are
            listed: a broker that lost its topics gets them back with the configured count
            instead of its own auto-created default.
    """

    def __init__(
        self,
        brokers: list[str],
        topic: str,
        *,
        tail: bool = True,
        batch_size: int = 5000,
        stopping: Callable[[], bool] = lambda: False,
        ensure: Mapping[str, int] | None = None,
    ) -> None:
        self._brokers = ",".join(brokers)
        self._topic = topic
        self._tail = tail
        self._batch_size = batch_size
        self._stopping = stopping
        self._ensure = dict(ensure or {})
        self._partitions: int | None = None

    @override
    def list_parts(self) -> list[str]:
        if self._ensure:
            created = ensure_topics(self._brokers, self._ensure)
            if created:
                _log.warning("kafka topics %s were missing: created (%s)", created, self._ensure)
        meta = AdminClient({"bootstrap.servers": self._brokers}).list_topics(self._topic, 15)
        found = meta.topics.get(self._topic)
        if found is None or found.error is not None:
            raise RuntimeError(f"Kafka topic {self._topic!r} not found at {self._brokers}")
        self._partitions = len(found.partitions)
        return [f"{p}-{self._topic}" for p in sorted(found.partitions)]

    @override
    def build_part(
        self, step_id: str, for_part: str, resume_state: PositionState | int | None
    ) -> _Partition:
        index, _topic = for_part.split("-", 1)
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": self._brokers,
            "group.id": "llmopt-processor",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": not self._tail,
            # A recovered offset past the end (the topic was recreated, e.g. the in-memory
            # embedded broker restarted) re-reads the partition instead of skipping what comes;
            # the partition notices it (the first offset is below the one it asked for).
            "auto.offset.reset": "earliest",
            **CONSUMER_TUNING,
        }
        position = PartitionPosition.from_state(resume_state)
        return _Partition(
            config,
            self._topic,
            int(index),
            position,
            self._partitions,
            self._batch_size,
            self._stopping,
        )
