"""Telemetry of each call, as CONTRACT.md §2 events, delivered off the call's path.

:class:`CallRecord` is what the SDK measured about one LLM call; :func:`call_event` and
:func:`feedback_event` turn records into the optimizer's JSON events. A :class:`Reporter`
delivers them: :class:`RestReporter` batches them to ``POST /api/v1/telemetry`` from a daemon
thread (bounded buffer, oldest dropped and counted when the optimizer is away), and
:class:`llmopt_client.otel.OtelReporter` emits OpenTelemetry GenAI spans instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import msgspec

__all__ = [
    "OPTIONAL_FIELDS",
    "CallRecord",
    "ListReporter",
    "Reporter",
    "RestReporter",
    "call_event",
    "feedback_event",
]

_log = logging.getLogger("llmopt_client")
_MAX_BACKOFF_S = 30.0


@dataclass(slots=True)
class CallRecord:
    """What the SDK measured about one LLM call (the event's fields, CONTRACT.md §2)."""

    app: str
    task: str
    request_id: str
    model: str
    started_at: float  # Unix seconds
    latency_ms: float
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int | None = None
    ttft_ms: float | None = None
    cost_usd: float | None = None
    status: str = "ok"
    error_type: str | None = None
    finish_reason: str | None = None
    quality: float | None = None
    variant: str = "baseline"
    config_version: int | None = None
    prompt_hash: str | None = None
    user_id: str | None = None
    operation: str = "chat"
    shadow_model: str | None = None
    shadow_quality: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def _event_id() -> str:
    return os.urandom(16).hex()


_OPTIONAL = (
    "provider", "cache_read_tokens", "ttft_ms", "cost_usd", "error_type", "finish_reason",
    "quality", "config_version", "prompt_hash", "user_id", "shadow_model", "shadow_quality",
)  # fmt: skip
#: The event fields a call may add beyond the required ones (``LlmoptClient.record``).
OPTIONAL_FIELDS = frozenset((*_OPTIONAL, "operation", "attributes"))


def call_event(record: CallRecord) -> dict[str, Any]:
    """The ``llm_call`` event of ``record`` (timestamp: when the call ended, epoch ms)."""
    event: dict[str, Any] = {
        "kind": "llm_call",
        "event_id": _event_id(),
        "timestamp": round(record.started_at * 1000.0 + record.latency_ms),  # epoch ms
        "app": record.app,
        "task": record.task,
        "operation": record.operation,
        "model": record.model,
        "latency_ms": record.latency_ms,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "status": record.status,
        "variant": record.variant,
        "request_id": record.request_id,
    }
    for name in _OPTIONAL:
        value = getattr(record, name)
        if value is not None:
            event[name] = value
    if record.attributes:
        event["attributes"] = record.attributes
    return event


def feedback_event(
    app: str,
    request_id: str,
    quality: float,
    *,
    task: str | None = None,
    shadow_model: str | None = None,
    shadow_quality: float | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """A ``feedback`` event: a (delayed) quality score for call ``request_id``."""
    event: dict[str, Any] = {
        "kind": "feedback",
        "event_id": _event_id(),
        "timestamp": round((time.time() if at is None else at) * 1000.0),  # epoch ms
        "app": app,
        "request_id": request_id,
        "quality": quality,
    }
    if task is not None:
        event["task"] = task
    if shadow_model is not None and shadow_quality is not None:
        event["shadow_model"] = shadow_model
        event["shadow_quality"] = shadow_quality
    return event


class Reporter(Protocol):
    """Delivers events; ``emit`` must never block on the network."""

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event."""
        ...

    def flush(self, timeout: float) -> bool:
        """Deliver what is queued; False when some could not be delivered in ``timeout``."""
        ...

    def close(self) -> None:
        """Flush what can be flushed and release resources."""
        ...


class ListReporter:
    """Keeps the events in a list (tests, and the simulator's in-process runs)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def emit(self, event: dict[str, Any]) -> None:
        """Append ``event``."""
        self.events.append(event)

    def flush(self, timeout: float) -> bool:
        """Nothing to deliver."""
        return True

    def close(self) -> None:
        """Nothing to release."""


class RestReporter:
    """Batches events to ``POST /api/v1/telemetry`` from a daemon thread.

    A failed send keeps its batch queued and backs off (``interval`` doubling up to 30 s);
    :meth:`flush` tries at once.

    Args:
        http: An httpx client whose ``base_url`` is the optimizer's REST API.
        headers: Authentication headers (a key with the ``ingest`` role is enough).
        batch: Most events per request.
        interval: Seconds between sends while fewer than ``batch`` events wait.
        max_buffer: Most events kept while the optimizer is away (the oldest are dropped).
    """

    def __init__(
        self,
        http: httpx.Client,
        headers: dict[str, str],
        *,
        batch: int = 500,
        interval: float = 1.0,
        max_buffer: int = 100_000,
    ) -> None:
        self._http = http
        self._headers = {**headers, "content-type": "application/json"}
        self._batch = batch
        self._interval = interval
        self._queue: deque[dict[str, Any]] = deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._sending = 0
        self._backoff = 0.0  # seconds to wait after the last failed send (0: none failed)
        self._retry_at = 0.0
        self.sent = 0
        self.rejected = 0  # events the optimizer refused (invalid: they went to its DLQ)
        self.failures = 0  # failed sends (the batch stays queued)
        self.dropped = 0  # events dropped because the buffer was full
        self._thread = threading.Thread(target=self._run, name="llmopt-telemetry", daemon=True)
        self._thread.start()

    def emit(self, event: dict[str, Any]) -> None:
        """Queue ``event`` (never blocks on the network)."""
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(event)
            full = len(self._queue) == self._batch  # wake once, when a batch is complete
        if full:
            self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until every queued event is delivered; False on timeout."""
        deadline = time.monotonic() + timeout
        self._retry_at = 0.0  # an explicit flush tries now, backoff or not
        self._wake.set()
        with self._idle:
            while self._queue or self._sending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.1))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout`` s), then stop the thread."""
        self.flush(timeout)
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            n = min(len(self._queue), self._batch)
            batch = [self._queue.popleft() for _ in range(n)]
            self._sending = n
            return batch

    def _requeue(self, batch: list[dict[str, Any]]) -> None:
        with self._lock:
            room = (self._queue.maxlen or 0) - len(self._queue)
            keep = batch[max(0, len(batch) - room) :] if room > 0 else []
            self.dropped += len(batch) - len(keep)
            self._queue.extendleft(reversed(keep))

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            if time.monotonic() < self._retry_at:  # backing off after a failed send
                continue
            while True:
                batch = self._take()
                if not batch:
                    break
                ok = self._send(batch)
                if ok:
                    self._backoff = 0.0
                else:
                    self._requeue(batch)
                    self._backoff = min(max(self._interval, 2 * self._backoff), _MAX_BACKOFF_S)
                    self._retry_at = time.monotonic() + self._backoff
                with self._idle:
                    self._sending = 0
                    self._idle.notify_all()
                if not ok:
                    break

    def _send(self, batch: list[dict[str, Any]]) -> bool:
        try:
            response = self._http.post(
                "/api/v1/telemetry", content=msgspec.json.encode(batch), headers=self._headers
            )
            response.raise_for_status()
            self.sent += len(batch)
            self.rejected += int(response.json().get("rejected", 0))
            return True
        except (httpx.HTTPError, ValueError) as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                _log.warning("llmopt telemetry not delivered (%d failures): %s", self.failures, exc)
            return False
