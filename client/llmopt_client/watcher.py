"""The app's active config, kept in memory and followed in the background (fail static).

:class:`ConfigWatcher` polls ``GET /api/v1/config/{app}`` with ``If-None-Match`` (the API
answers 304 while the config is unchanged) on its own daemon thread. Reading the config
(:attr:`ConfigWatcher.table`) never waits for the network: it is the last config fetched. When
the optimizer cannot be reached, the watcher keeps serving that config, logs the outage once
(and the recovery), and counts failed polls in :attr:`ConfigWatcher.stats`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import msgspec

from llmopt_client.config import AppConfig, decode_config
from llmopt_client.routing import RoutingTable

__all__ = ["ConfigStats", "ConfigWatcher"]

_log = logging.getLogger("llmopt_client")


@dataclass(slots=True)
class ConfigStats:
    """Counters of the config watcher (read them, e.g. to export as metrics).

    Attributes:
        fetches: Polls answered with a (new) config.
        not_modified: Polls answered 304 (the config in memory is current).
        missing: Polls answered 404 (the app has no config yet).
        failures: Polls that failed (network error, 5xx, undecodable body): fail static.
        consecutive_failures: Failed polls since the last successful one.
        last_success: Monotonic time of the last successful poll (``None``: never).
        version: The config version in memory (``None``: none).
    """

    fetches: int = 0
    not_modified: int = 0
    missing: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_success: float | None = None
    version: int | None = None

    @property
    def stale(self) -> bool:
        """Whether the last poll failed (the config in memory may be out of date)."""
        return self.consecutive_failures > 0


class ConfigFollower:
    """What both watchers share: the table they serve, its stats, and how a read changes them.

    Subclasses set ``app``, ``stats``, ``table``, ``_on_change`` and ``_unreachable`` (how a
    failure is worded in the log).
    """

    app: str
    stats: ConfigStats
    table: RoutingTable
    _on_change: Callable[[AppConfig], None] | None
    _unreachable: str

    def _take(self, config: AppConfig) -> None:
        """Serve ``config`` unless it is the same or older (another replica's cache)."""
        current = self.table.config
        if current is not None and (current == config or config.version < current.version):
            return  # unchanged, or an older answer: never go back
        self.table = RoutingTable(config)  # one reference swap: readers never see a half table
        self.stats.version = config.version
        if self._on_change is not None:
            self._on_change(config)

    def _failed(self, exc: Exception) -> None:
        self.stats.failures += 1
        self.stats.consecutive_failures += 1
        if self.stats.consecutive_failures == 1:
            _log.warning(
                "llmopt config of %r %s, serving the last known config (version %s): %s",
                self.app,
                self._unreachable,
                self.stats.version,
                exc,
            )


class ConfigWatcher(ConfigFollower):
    """Follows one app's config over REST; see the module docstring.

    Args:
        app: The application (``service.name``).
        http: An httpx client whose ``base_url`` is the optimizer's REST API.
        headers: Authentication headers (``x-api-key`` or ``Authorization``).
        poll_interval: Seconds between polls.
        on_change: Called (on the watcher thread) with each new config.
        clock: Monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        app: str,
        http: httpx.Client,
        headers: dict[str, str],
        *,
        poll_interval: float = 5.0,
        on_change: Callable[[AppConfig], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self._http = http
        self._headers = headers
        self._path = f"/api/v1/config/{quote(app, safe='')}"
        self._poll = poll_interval
        self._on_change = on_change
        self._clock = clock
        self._etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._first = threading.Event()
        self.stats = ConfigStats()
        self.table = RoutingTable(None)
        self._unreachable = "unreachable"

    @property
    def config(self) -> AppConfig | None:
        """The config in memory (``None`` until one was fetched)."""
        return self.table.config

    def start(self) -> None:
        """Poll on a daemon thread (the first poll right away). Idempotent."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"llmopt-config-{self.app}")
        self._thread.daemon = True
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the first poll finished (whatever its outcome); False on timeout."""
        return self._first.wait(timeout)

    def stop(self) -> None:
        """Stop polling and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def refresh(self) -> bool:
        """Poll once now (on the calling thread); True when the poll succeeded."""
        headers = dict(self._headers)
        if self._etag is not None:
            headers["if-none-match"] = self._etag
        try:
            response = self._http.get(self._path, headers=headers)
            if response.status_code == httpx.codes.NOT_MODIFIED:
                self.stats.not_modified += 1
            elif response.status_code == httpx.codes.NOT_FOUND:
                self.stats.missing += 1
            else:
                response.raise_for_status()
                self._apply(decode_config(response.content), response.headers.get("etag"))
        except (httpx.HTTPError, msgspec.MsgspecError, ValueError) as exc:
            self._failed(exc)
            return False
        finally:
            self._first.set()
        if self.stats.consecutive_failures:
            _log.warning(
                "llmopt config of %r reachable again after %d failed polls",
                self.app,
                self.stats.consecutive_failures,
            )
        self.stats.consecutive_failures = 0
        self.stats.last_success = self._clock()
        return True

    def _apply(self, config: AppConfig, etag: str | None) -> None:
        self._etag = etag
        self.stats.fetches += 1
        self._take(config)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self._poll)
