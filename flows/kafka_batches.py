"""A Kafka source whose items are whole consumer batches (one item per poll, not per record).

Bytewax's own Kafka source emits one item per record, and every operator step then costs
microseconds per record; the processor works on batches instead. Each Kafka partition is one
Bytewax partition; its resume state is the next offset, so recovery replays from there.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient
from typing_extensions import override

__all__ = ["CONSUMER_TUNING", "KafkaBatchSource", "RecordBatch"]

# librdkafka waits fetch.queue.backoff.ms (default 1000 ms) before refilling a queue it
# considers full: with the default, throughput halves with 1 s stalls.
CONSUMER_TUNING: dict[str, str | int | bool] = {
    "fetch.queue.backoff.ms": 5,
    # Prefetch bounds: librdkafka holds whole fetched record batches until their last record is
    # consumed; with its defaults (64 MB queue, 50 MB fetches) four partitions held ~250 MB per
    # process. Smaller fetches read 1M events as fast and hold ~170 MB (bench/README.md).
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


class _Partition(StatefulSourcePartition[RecordBatch, int]):
    def __init__(
        self,
        config: dict[str, str | int | bool],
        topic: str,
        partition: int,
        offset: int,
        batch_size: int,
        stopping: Callable[[], bool],
    ) -> None:
        self._consumer = Consumer(config)
        self._stopping = stopping
        self._consumer.assign([TopicPartition(topic, partition, offset)])
        self._topic, self._partition = topic, partition
        self._offset = offset
        self._batch_size = batch_size
        self._eof = False

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
            errors: list[str] = []
            failures = list(map(Message.error, messages))
            if failures.count(None) != len(failures):  # rare: partition end, or consumer error
                for err in failures:
                    if err is None:
                        continue
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._eof = True
                    else:
                        errors.append(str(err))
                messages = [m for m, err in zip(messages, failures, strict=True) if err is None]
            offsets: list[int] = list(map(Message.offset, messages))  # type: ignore[arg-type]
            values: list[bytes | None] = list(map(Message.value, messages))
            del messages
        finally:
            if collecting:
                gc.enable()
        if offsets:
            self._offset = offsets[-1] + 1
        if not offsets and not errors:
            return []
        return [RecordBatch(self._topic, self._partition, offsets, values, errors)]

    @override
    def next_awake(self) -> datetime | None:
        return None

    @override
    def snapshot(self) -> int:
        return self._offset

    @override
    def close(self) -> None:
        self._consumer.close()


class KafkaBatchSource(FixedPartitionedSource[RecordBatch, int]):
    """Reads ``topic`` from the beginning (or the recovered offsets), in batches.

    Args:
        brokers: ``host:port`` list.
        topic: The telemetry topic.
        tail: False stops each partition at its end (backfills, benchmarks, tests).
        batch_size: At most this many records per item.
        stopping: When it returns True every partition ends (a graceful stop, see
            :mod:`flows.stop`); its offset is in the snapshot, so a restart resumes there.
    """

    def __init__(
        self,
        brokers: list[str],
        topic: str,
        *,
        tail: bool = True,
        batch_size: int = 5000,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self._brokers = ",".join(brokers)
        self._topic = topic
        self._tail = tail
        self._batch_size = batch_size
        self._stopping = stopping

    @override
    def list_parts(self) -> list[str]:
        meta = AdminClient({"bootstrap.servers": self._brokers}).list_topics(self._topic, 15)
        found = meta.topics.get(self._topic)
        if found is None or found.error is not None:
            raise RuntimeError(f"Kafka topic {self._topic!r} not found at {self._brokers}")
        return [f"{p}-{self._topic}" for p in sorted(found.partitions)]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        index, _topic = for_part.split("-", 1)
        config: dict[str, str | int | bool] = {
            "bootstrap.servers": self._brokers,
            "group.id": "llmopt-processor",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": not self._tail,
            # A recovered offset past the end (the topic was recreated, e.g. the in-memory
            # embedded broker restarted) re-reads the partition instead of skipping what comes.
            "auto.offset.reset": "earliest",
            **CONSUMER_TUNING,
        }
        offset = OFFSET_BEGINNING if resume_state is None else resume_state
        return _Partition(config, self._topic, int(index), offset, self._batch_size, self._stopping)
