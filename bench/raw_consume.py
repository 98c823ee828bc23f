"""Raw Kafka consumers for bench/throughput.py: the fastest one we can write, and the processor's.

``fast``: confluent-kafka ``consume(num_messages=10_000)`` with librdkafka's fetch and prefetch
bounds raised (50 MB fetches, 8 MB per partition, a 1 GB prefetch queue), the batch's values
joined into one JSON array and decoded by msgspec in one call; the connection and the first
fetch happen before the timer starts (the first record is waited for untimed), and the garbage
collector sits out the read. Measured beside other shapes (bench/README.md): batches of 100,000
cost twice the CPU per record of 10,000 (the decoded list and the messages outlive the cache),
and with the collector on, decoding a batch at once costs 3-4x (young collections walk the
live structs).

``processor``: the processor's own consumer settings (``flows.kafka_batches.CONSUMER_TUNING``:
memory-bounded 1 MB fetches, a 16 MB prefetch queue), ``consume(1000)``, one msgspec call per
record, timed from ``assign()``: what the benchmark's baseline was until issue 21.
"""

from __future__ import annotations

import gc
import time
from itertools import repeat
from operator import is_not

import msgspec
from confluent_kafka import Consumer, Message, TopicPartition

from flows.kafka_batches import CONSUMER_TUNING

__all__ = ["FAST_TUNING", "Record", "consume_fast", "consume_like_processor", "first_fetch_s"]


class Record(msgspec.Struct):
    """What a baseline decodes each record into: the contract's fields, no validation."""

    event_id: str
    timestamp: int | str
    app: str
    task: str = "default"
    model: str | None = None
    latency_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "ok"


_ONE = msgspec.json.Decoder(Record)
_MANY = msgspec.json.Decoder(list[Record])

#: librdkafka bounds raised as far as a dedicated reader would: whole 50 MB fetches, no
#: refill backoff, a prefetch queue larger than the test topic.
FAST_TUNING: dict[str, str | int | bool] = {
    "fetch.queue.backoff.ms": 0,
    "queued.max.messages.kbytes": 1024 * 1024,
    "queued.min.messages": 10_000_000,
    "fetch.max.bytes": 50 * 1024 * 1024,
    "max.partition.fetch.bytes": 8 * 1024 * 1024,
    "fetch.min.bytes": 1,
    "fetch.wait.max.ms": 10,
}


def _assigned(
    bootstrap: str, topic: str, partitions: int, tuning: dict[str, str | int | bool]
) -> Consumer:
    """A consumer assigned every partition of ``topic`` from offset 0, reporting their ends."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-raw",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            **tuning,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    return consumer


#: Seconds the last :func:`consume_fast` spent connecting and waiting for its first record.
first_fetch_s = [0.0]


def consume_fast(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
    """Read every partition to its end, decode each batch at once; ``(records, seconds)``.

    The timer starts once the first record has arrived (connection and first fetch excluded,
    their time is left in :data:`first_fetch_s`).
    """
    consumer = _assigned(bootstrap, topic, partitions, FAST_TUNING)
    first: list[Message] = []
    connect = time.perf_counter()
    while not first:  # untimed: connect, metadata, the first fetch
        first = consumer.consume(1, 30.0)
    first_fetch_s[0] = time.perf_counter() - connect
    count, done, batch = 0, 0, first
    start = time.perf_counter()
    gc.disable()  # Message objects are GC-tracked: a large batch sets off young collections
    try:
        while done < partitions:
            failures = list(map(Message.error, batch))
            if any(map(is_not, failures, repeat(None))):
                done += sum(f is not None for f in failures)
                values = [m.value() for m, f in zip(batch, failures, strict=True) if f is None]
            else:
                values = list(map(Message.value, batch))
            if values:
                count += len(_MANY.decode(b"[" + b",".join(values) + b"]"))
            batch = consumer.consume(10_000, 1.0)
    finally:
        gc.enable()
    elapsed = time.perf_counter() - start
    consumer.close()
    return count, elapsed


def consume_like_processor(bootstrap: str, topic: str, partitions: int) -> tuple[int, float]:
    """The processor's consumer settings, ``consume(1000)``, one decode per record, timed from
    ``assign()``; ``(records, seconds)``."""
    consumer = _assigned(bootstrap, topic, partitions, CONSUMER_TUNING)
    count, done = 0, 0
    start = time.perf_counter()
    while done < partitions:
        for msg in consumer.consume(1000, 1.0):
            if msg.error():
                done += 1
                continue
            _ONE.decode(msg.value())
            count += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return count, elapsed
