"""An asyncio front of the confluent-kafka producer: await the delivery of a batch.

``produce()`` never blocks the event loop; a daemon thread polls the producer so that
delivery callbacks run, and each batch's future is resolved on the loop once every one of its
records is confirmed or failed. When librdkafka reports every broker down, ``on_brokers_down``
is called on the loop (the pipeline then opens its breaker and :meth:`KafkaSender.purge` fails
the records still waiting, so they spill at once instead of after ``delivery_timeout``).

Topics: given ``topics`` (name → partitions), the sender creates the missing ones before its
first send and again before the first send after every sign that the broker may have lost them
(all brokers down, a record refused for an unknown topic or partition, a fresh producer). Its
producer never lets the broker auto-create a topic, which would give it the broker's default
partition count (tansu: 4) instead of the configured one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog
from confluent_kafka import KafkaError, Message, Producer

from collector.producer import producer_config
from collector.records import OutRecord
from core.errors import StorageUnavailableError
from storage.kafka import ensure_topics

__all__ = ["KafkaSender"]

_log = structlog.get_logger(__name__)
# Delivery errors that mean the topic (or its partition) is not there (any more).
_MISSING = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
    }
)


class _Batch:
    """Delivery flags of one batch; resolved on the loop when the last callback arrives."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.flags = [False] * size
        self.errors: list[str] = []
        self.missing_topic = False
        self.remaining = size
        self.lock = threading.Lock()
        self.future: asyncio.Future[list[bool]] = loop.create_future()

    def callback(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            with self.lock:
                if err is None:
                    self.flags[index] = True
                else:
                    self.missing_topic |= err.code() in _MISSING
                    if len(self.errors) < 5:
                        self.errors.append(str(err))
                self.remaining -= 1
                done = self.remaining == 0
            if done:
                self.loop.call_soon_threadsafe(self._resolve)

        return on_delivery

    def _resolve(self) -> None:
        if not self.future.done():
            self.future.set_result(self.flags)


class KafkaSender:
    """Sends batches of :class:`OutRecord` and reports which were delivered.

    Args:
        bootstrap: Kafka ``host:port`` list.
        delivery_timeout: Seconds a record may wait for its acknowledgement.
        linger_ms: Producer batching delay.
        on_brokers_down: Called on the event loop when librdkafka reports all brokers down.
        topics: Topics to (re)create when missing (name → partitions); empty: the broker's
            business (the producer may then auto-create them).
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        delivery_timeout: float,
        linger_ms: int = 5,
        on_brokers_down: Callable[[], None] | None = None,
        topics: Mapping[str, int] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = dict(topics or {})
        self._check_topics = bool(self._topics)  # before the next send
        self.topics_created = 0  # times missing topics were found (and created)
        self._timeout_ms = max(1000, int(delivery_timeout * 1000))
        self._linger_ms = linger_ms
        self._on_brokers_down = on_brokers_down
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer = self._new_producer()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._awaiting = 0  # sends waiting for their delivery reports (see _delivered)
        self.last_errors: list[str] = []

    def _new_producer(self) -> Producer:
        config: dict[str, Any] = producer_config(
            self._bootstrap,
            linger_ms=self._linger_ms,
            **{
                "message.timeout.ms": self._timeout_ms,
                "queue.buffering.max.messages": 1_000_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "reconnect.backoff.max.ms": 1000,
                "error_cb": self._on_error,
            },
        )
        if self._topics:
            config["allow.auto.create.topics"] = False
        return Producer(config)

    def _on_error(self, err: KafkaError) -> None:
        if err.code() != KafkaError._ALL_BROKERS_DOWN:
            return
        self._check_topics = bool(self._topics)  # a broker that comes back may have lost them
        if self._loop and self._on_brokers_down:
            self._loop.call_soon_threadsafe(self._on_brokers_down)

    def _ensure_topics(self) -> None:
        """Create the missing topics (blocking); a broker still away leaves it for later."""
        try:
            created = ensure_topics(self._bootstrap, self._topics, timeout=5.0)
        except StorageUnavailableError as exc:
            _log.warning("kafka_topics_not_checked", error=str(exc))
            return
        self._check_topics = False
        if created:
            self.topics_created += 1
            _log.warning("kafka_topics_recreated", topics=created)

    def _poll_forever(self) -> None:
        # Housekeeping (errors, reports of records nobody awaits): while a send awaits its
        # reports, the event loop serves them itself (see :meth:`_delivered`).
        while not self._stop.is_set():
            if self._awaiting:
                self._stop.wait(0.01)
            else:  # short: a send that starts meanwhile waits for this poll's reports
                self._producer.poll(0.01)

    def start(self) -> None:
        """Bind to the running loop and start the poll thread."""
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll_forever, name="kafka-poll", daemon=True)
        self._thread.start()

    async def send(self, records: Sequence[OutRecord]) -> list[bool]:
        """Produce ``records`` in order; return, per record, whether Kafka confirmed it."""
        if not records:
            return []
        if self._check_topics:
            await asyncio.to_thread(self._ensure_topics)
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, len(records))
        producer = self._producer
        for i, record in enumerate(records):
            while True:
                try:
                    producer.produce(
                        record.topic,
                        value=record.value,
                        key=record.key,
                        headers=record.headers or None,  # type: ignore[arg-type]
                        on_delivery=batch.callback(i),
                    )
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    await asyncio.sleep(0.005)
        flags = await self._delivered(producer, batch)
        if batch.errors:
            self.last_errors = batch.errors
        if batch.missing_topic:
            self._check_topics = bool(self._topics)
        return flags

    async def _delivered(self, producer: Producer, batch: _Batch) -> list[bool]:
        """Serve delivery reports on the event loop's thread until ``batch`` is resolved.

        Each report's callback needs the GIL; served by the poll thread, every one waited for
        the loop thread to release it (up to ``sys.getswitchinterval()``, 5 ms) while the loop
        mapped and validated other requests: a 1600-record round took 40-300 ms to be confirmed
        instead of 15-40 ms, and ingest slowed down as concurrency grew (bench/README.md).
        """
        self._awaiting += 1
        try:
            while not batch.future.done():
                producer.poll(0)
                if batch.future.done():
                    break
                await asyncio.sleep(0.001)
        finally:
            self._awaiting -= 1
        return await batch.future

    async def purge(self) -> None:
        """Fail every record not yet delivered (their batches resolve with ``False``)."""
        producer = self._producer
        await asyncio.to_thread(self._purge, producer)

    @staticmethod
    def _purge(producer: Producer) -> None:
        producer.purge(in_queue=True, in_flight=True, blocking=False)
        producer.poll(0)

    async def reset(self) -> None:
        """Replace the producer by a fresh one (new idempotence session) after purging it."""
        self._check_topics = bool(self._topics)
        old, self._producer = self._producer, self._new_producer()
        await asyncio.to_thread(self._purge, old)
        await asyncio.to_thread(old.flush, 1.0)

    async def close(self, grace: float = 10.0) -> None:
        """Deliver what is queued (up to ``grace`` seconds), then stop polling."""
        await asyncio.to_thread(self._producer.flush, grace)
        await asyncio.to_thread(self._purge, self._producer)
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
