"""Where the simulated apps send their telemetry: Kafka, the REST ingest endpoint, or a list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
import msgspec

from collector.producer import TelemetryProducer

__all__ = ["CallbackSink", "KafkaSink", "ListSink", "RestSink", "TelemetrySink"]

_ENCODER = msgspec.json.Encoder()


class TelemetrySink(Protocol):
    """Takes one tick's events (CONTRACT.md §2), in event-time order."""

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Deliver ``events`` (raises when they cannot be delivered)."""
        ...


class ListSink:
    """Keeps every event (unit tests)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Append ``events``."""
        self.events += events


class CallbackSink:
    """Encodes each tick's events as JSON records and hands them to ``take``."""

    def __init__(self, take: Callable[[list[bytes]], None]) -> None:
        self._take = take

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Encode and hand over ``events``."""
        self._take([_ENCODER.encode(e) for e in events])


class KafkaSink:
    """The telemetry topic, keyed by app, every record confirmed before the next tick."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer: TelemetryProducer | None = TelemetryProducer(bootstrap, topic)
        self.delivered = 0

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Produce ``events`` and wait for their acknowledgements."""
        if self._producer is None:
            raise RuntimeError("the Kafka sink is closed")
        report = self._producer.send_all(_ENCODER.encode(e) for e in events)
        if report.failed:
            raise RuntimeError(f"{report.failed} telemetry records failed: {report.errors[:3]}")
        self.delivered += report.delivered

    def close(self) -> None:
        """Drop the producer (every record was confirmed by ``send``)."""
        self._producer = None


class RestSink:
    """``POST /api/v1/telemetry`` (NDJSON) in batches; retries a 429 after its Retry-After."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        batch: int = 5000,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        import time

        self._client = client or httpx.Client(base_url=api_url.rstrip("/"), timeout=30.0)
        self._key = api_key
        self._batch = batch
        self._sleep = sleep or time.sleep
        self.delivered = 0
        self.rejected = 0  # events the API refused (sent to its DLQ)
        self.errors: list[str] = []  # the first reasons it gave

    def send(self, events: Sequence[dict[str, Any]]) -> None:
        """Post ``events`` in batches."""
        for i in range(0, len(events), self._batch):
            body = b"\n".join(_ENCODER.encode(e) for e in events[i : i + self._batch])
            for _attempt in range(10):
                response = self._client.post(
                    "/api/v1/telemetry",
                    content=body,
                    headers={"content-type": "application/x-ndjson", "x-api-key": self._key},
                )
                if response.status_code != httpx.codes.TOO_MANY_REQUESTS:
                    break
                self._sleep(float(response.headers.get("retry-after", "1")))
            response.raise_for_status()
            self.delivered += len(events[i : i + self._batch])
            answer = response.json()
            self.rejected += int(answer.get("rejected", 0))
            self.errors += [str(e) for e in answer.get("errors", [])][: 10 - len(self.errors)]

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
