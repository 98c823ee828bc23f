""":class:`LlmoptClient`: what an application holds to join the optimizer's loop."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx

from llmopt_client.cache import LruCache, ResponseCache
from llmopt_client.config import AppConfig
from llmopt_client.ratelimit import TokenBucket
from llmopt_client.routing import Route, RoutingTable
from llmopt_client.telemetry import OPTIONAL_FIELDS, Reporter, RestReporter, feedback_event
from llmopt_client.watcher import ConfigStats, ConfigWatcher

if TYPE_CHECKING:
    from llmopt_client.grpc_watch import GrpcConfigWatcher

__all__ = ["LlmoptClient"]

_log = logging.getLogger("llmopt_client")
_MAX_PENDING_SHADOW = 10_000


class LlmoptClient:
    """An application's handle on the optimizer: config, routing, telemetry, feedback, shadow.

    Args:
        app: The application's name (``service.name``; the optimizer's unit with ``task``).
        api_url: The optimizer's REST API (``http://host:8080``). ``None`` with ``http``.
        api_key: An API key (``viewer`` reads the config; ``ingest`` writes telemetry).
        http: An httpx client to use instead of one built from ``api_url`` (its
            ``base_url`` must be the REST API); the caller closes it.
        reporter: Where telemetry goes (default: :class:`RestReporter` to the same API).
        poll_interval: Seconds between config polls (``If-None-Match``: 304 while unchanged).
        cache: The response cache the ``cache`` override uses (default: an in-process LRU).
        start: Start following the config at once (``False``: call :meth:`start`).
        timeout: Seconds for each request to the optimizer (never on an LLM call's path).
        grpc_target: Follow the config over gRPC ``WatchConfig`` at this address
            (``host:50051``) instead of polling REST (``pip install llmopt-client[grpc]``);
            telemetry still goes to ``api_url`` unless ``reporter`` says otherwise.
    """

    def __init__(
        self,
        app: str,
        *,
        api_url: str | None = None,
        api_key: str | None = None,
        http: httpx.Client | None = None,
        reporter: Reporter | None = None,
        poll_interval: float = 5.0,
        cache: ResponseCache | None = None,
        start: bool = True,
        timeout: float = 5.0,
        grpc_target: str | None = None,
    ) -> None:
        if http is None and api_url is None:
            raise ValueError("LlmoptClient needs api_url or http")
        self.app = app
        self._own_http = http is None
        self._http = http or httpx.Client(base_url=str(api_url).rstrip("/"), timeout=timeout)
        headers = {"x-api-key": api_key} if api_key else {}
        self._watcher: ConfigWatcher | GrpcConfigWatcher
        if grpc_target is not None:
            from llmopt_client.grpc_watch import GrpcConfigWatcher

            self._watcher = GrpcConfigWatcher(app, grpc_target, api_key=api_key)
        else:
            self._watcher = ConfigWatcher(app, self._http, headers, poll_interval=poll_interval)
        self.reporter: Reporter = reporter or RestReporter(self._http, headers)
        self.cache: ResponseCache = cache or LruCache()
        self._buckets: dict[tuple[str, str, float, float], TokenBucket] = {}
        self._shadow_scores: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._shadow_pool: ThreadPoolExecutor | None = None
        if start:
            self.start()

    # -- config --------------------------------------------------------------------------
    def start(self) -> None:
        """Follow the config on a background thread (the first poll right away)."""
        self._watcher.start()

    def wait_for_config(self, timeout: float = 5.0) -> AppConfig | None:
        """Wait (up to ``timeout`` s) for the first poll; the config, ``None`` without one.

        Optional: calls routed before the first config arrives use the app's own defaults.
        """
        self._watcher.wait_ready(timeout)
        return self._watcher.config

    def refresh(self) -> bool:
        """Read the config once now, on this thread; True when the optimizer answered."""
        if isinstance(self._watcher, ConfigWatcher):
            return self._watcher.refresh()
        try:
            self._watcher.get()
        except Exception:  # grpc.RpcError: counted by the watcher, the last config stays
            return False
        return True

    @property
    def config(self) -> AppConfig | None:
        """The config in memory (the last one fetched)."""
        return self._watcher.config

    @property
    def config_stats(self) -> ConfigStats:
        """Polls, 304s, failures (fail static) and the version in memory."""
        return self._watcher.stats

    # -- routing -------------------------------------------------------------------------
    def route(self, task: str, request_id: str | None = None) -> Route:
        """How to serve one call of ``task``: model, provider, overrides, variant, version.

        Never waits on the network: it reads the config in memory.

        Args:
            task: The call site (``classify``, ``summarise``...).
            request_id: The call's id (the split key; pass it again to :meth:`feedback`).
                A random one when absent.
        """
        table: RoutingTable = self._watcher.table
        return table.route(task, request_id or uuid.uuid4().hex)

    def rate_limiter(self, route: Route) -> TokenBucket | None:
        """The request-rate bucket of the route's ``rate_limit`` (shared per task and side)."""
        limit = route.config.rate_limit
        if limit is None or limit.requests_per_s is None:
            return None
        key = (route.task, route.variant, limit.requests_per_s, float(limit.burst))
        bucket = self._buckets.get(key)
        if bucket is None:
            with self._lock:
                bucket = self._buckets.setdefault(
                    key, TokenBucket(limit.requests_per_s, limit.burst)
                )
        return bucket

    # -- telemetry -----------------------------------------------------------------------
    def record(
        self,
        route: Route,
        *,
        model: str | None = None,
        latency_ms: float = 0.0,
        started_at: float | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        status: str = "ok",
        **optional: Any,
    ) -> dict[str, Any]:
        """Report one call served along ``route``; returns the queued ``llm_call`` event.

        Args:
            route: The call's route (task, request id, variant, config version).
            model: The model called (default: the route's).
            latency_ms: The call's duration.
            started_at: When it started, Unix seconds (default: now minus ``latency_ms``).
            input_tokens: Prompt tokens.
            output_tokens: Completion tokens.
            status: ``"ok"`` or ``"error"``.
            **optional: Any other event field of CONTRACT.md §2 (``provider``, ``ttft_ms``,
                ``cost_usd``, ``error_type``, ``finish_reason``, ``quality``,
                ``cache_read_tokens``, ``prompt_hash``, ``user_id``, ``shadow_model``,
                ``shadow_quality``, ``operation``, ``attributes``); ``None`` values are left out.

        Raises:
            TypeError: An unknown field (a typo would otherwise be lost silently).
        """
        unknown = optional.keys() - OPTIONAL_FIELDS
        if unknown:
            raise TypeError(f"unknown telemetry fields: {sorted(unknown)}")
        start = time.time() - latency_ms / 1000.0 if started_at is None else started_at
        event: dict[str, Any] = {
            "kind": "llm_call",
            "event_id": os.urandom(16).hex(),
            "timestamp": round(start * 1000.0 + latency_ms),
            "app": self.app,
            "task": route.task,
            "model": model or route.model or "unknown",
            "latency_ms": latency_ms,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "status": status,
            "variant": route.variant,
            "request_id": route.request_id,
        }
        if route.config_version is not None:
            event["config_version"] = route.config_version
        if route.provider is not None:
            event["provider"] = route.provider
        for name, value in optional.items():
            if value is not None:
                event[name] = value
        self.reporter.emit(event)
        return event

    def feedback(self, request_id: str, score: float, *, task: str | None = None) -> None:
        """Report a (delayed) quality score in [0, 1] for call ``request_id``.

        When :meth:`shadow` scored a candidate on that request, its score goes along (paired).
        """
        with self._lock:
            shadow = self._shadow_scores.pop(request_id, None)
        self.reporter.emit(
            feedback_event(
                self.app,
                request_id,
                score,
                task=task,
                shadow_model=shadow[0] if shadow else None,
                shadow_quality=shadow[1] if shadow else None,
            )
        )

    def shadow(
        self,
        route: Route,
        run: Callable[[str], Any],
        score: Callable[[Any], float | None],
        *,
        served_score: float | None = None,
    ) -> Future[float | None] | None:
        """Run the route's shadow candidate on this request without serving its answer.

        Does nothing (returns ``None``) unless the config has a shadow candidate and this
        request is in its sample. Otherwise runs ``run(candidate_model)`` then ``score`` on a
        background thread. With ``served_score`` (the served answer's score) the paired scores
        are reported at once as a feedback event; without it, the candidate's score waits for
        :meth:`feedback` on the same request id.

        Returns:
            A future of the candidate's score (``None`` when the candidate failed).
        """
        candidate = route.shadow
        if candidate is None:
            return None
        with self._lock:
            if self._shadow_pool is None:
                self._shadow_pool = ThreadPoolExecutor(2, thread_name_prefix="llmopt-shadow")

        def work() -> float | None:
            try:
                value = score(run(candidate.model))
            except Exception as exc:  # a failed candidate reports no score
                _log.warning("llmopt shadow run of %s failed: %s", candidate.model, exc)
                return None
            if value is None:
                return None
            if served_score is not None:
                self.reporter.emit(
                    feedback_event(
                        self.app,
                        route.request_id,
                        served_score,
                        task=route.task,
                        shadow_model=candidate.model,
                        shadow_quality=value,
                    )
                )
            else:
                with self._lock:
                    self._shadow_scores[route.request_id] = (candidate.model, value)
                    while len(self._shadow_scores) > _MAX_PENDING_SHADOW:
                        self._shadow_scores.popitem(last=False)
            return value

        return self._shadow_pool.submit(work)

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver queued telemetry (and finish running shadow calls first)."""
        if self._shadow_pool is not None:
            self._shadow_pool.shutdown(wait=True)
            self._shadow_pool = None
        return self.reporter.flush(timeout)

    def close(self) -> None:
        """Stop following the config, deliver queued telemetry, release connections."""
        self._watcher.stop()
        if self._shadow_pool is not None:  # shadow runs report through the reporter
            self._shadow_pool.shutdown(wait=True)
            self._shadow_pool = None
        self.reporter.close()  # delivers what is queued (up to 10 s)
        if self._own_http:
            self._http.close()

    def __enter__(self) -> LlmoptClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
