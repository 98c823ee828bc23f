"""The app's config over gRPC ``ConfigService.WatchConfig``: pushed, not polled.

:class:`GrpcConfigWatcher` keeps a ``WatchConfig`` stream open on a daemon thread: the server
sends the active config, then each newer one as it is written. When the stream breaks (the
optimizer restarts, the network fails) the last config stays in use (fail static, logged once,
counted in :attr:`GrpcConfigWatcher.stats`) and the watcher reconnects with
``after_version`` = the version it holds, backing off up to 30 s. :meth:`GrpcConfigWatcher.get`
is the unary ``GetConfig``.

Needs ``grpcio`` and ``protobuf`` (``pip install llmopt-client[grpc]``). The message classes
are built from a copy of ``config.proto``'s descriptor (:mod:`._config_descriptor`) in a
descriptor pool of the SDK's own, so no generated code is needed and nothing clashes with an
application that also imports the optimizer's generated modules.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import grpc
import msgspec
from google.protobuf import descriptor_pool, json_format, message_factory, struct_pb2, timestamp_pb2

from llmopt_client._config_descriptor import CONFIG_PROTO
from llmopt_client.config import AppConfig
from llmopt_client.routing import RoutingTable
from llmopt_client.watcher import ConfigFollower, ConfigStats

__all__ = ["GrpcConfigWatcher", "config_from_message"]

_log = logging.getLogger("llmopt_client")
_SERVICE = "/llmopt.v1.ConfigService/"
_MAX_BACKOFF_S = 30.0


def _classes() -> tuple[Any, Any, Any]:
    pool = descriptor_pool.DescriptorPool()
    for dependency in (struct_pb2, timestamp_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)
    pool.AddSerializedFile(base64.b64decode("".join(CONFIG_PROTO)))
    get = message_factory.GetMessageClass
    return (
        get(pool.FindMessageTypeByName("llmopt.v1.AppConfig")),
        get(pool.FindMessageTypeByName("llmopt.v1.GetConfigRequest")),
        get(pool.FindMessageTypeByName("llmopt.v1.WatchConfigRequest")),
    )


AppConfigMessage, GetConfigRequest, WatchConfigRequest = _classes()


def _ints(value: Any) -> Any:
    """Integral floats back to ints (a ``Struct`` holds every number as a double)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def config_from_message(message: Any) -> AppConfig:
    """An ``llmopt.v1.AppConfig`` message as the SDK's :class:`AppConfig`."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    for task in data.get("tasks", {}).values():
        if "params" in task:
            task["params"] = _ints(task["params"])
        canary = task.get("canary")
        if canary and "overrides" in canary:
            canary["overrides"] = _ints(canary["overrides"])
    return msgspec.convert(data, AppConfig, strict=False)


class GrpcConfigWatcher(ConfigFollower):
    """Follows one app's config over a ``WatchConfig`` stream; see the module docstring.

    Args:
        app: The application.
        target: The gRPC address (``host:50051``).
        api_key: Sent as ``x-api-key`` metadata.
        channel: A channel to use instead of an insecure one to ``target`` (TLS, options).
        on_change: Called (on the watcher thread) with each new config.
        clock: Monotonic seconds (injected in tests).
    """

    def __init__(
        self,
        app: str,
        target: str | None = None,
        *,
        api_key: str | None = None,
        channel: grpc.Channel | None = None,
        on_change: Callable[[AppConfig], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if channel is None and target is None:
            raise ValueError("GrpcConfigWatcher needs target or channel")
        self.app = app
        self._own = channel is None
        self._channel = channel or grpc.insecure_channel(str(target))
        self._metadata = (("x-api-key", api_key),) if api_key else ()
        self._get = self._channel.unary_unary(
            _SERVICE + "GetConfig",
            request_serializer=GetConfigRequest.SerializeToString,
            response_deserializer=AppConfigMessage.FromString,
        )
        self._watch = self._channel.unary_stream(
            _SERVICE + "WatchConfig",
            request_serializer=WatchConfigRequest.SerializeToString,
            response_deserializer=AppConfigMessage.FromString,
        )
        self._on_change = on_change
        self._clock = clock
        self._stop = threading.Event()
        self._first = threading.Event()
        self._call: Any = None
        self._thread: threading.Thread | None = None
        self.stats = ConfigStats()
        self.table = RoutingTable(None)
        self._unreachable = "stream broken"

    @property
    def config(self) -> AppConfig | None:
        """The config in memory (``None`` until one arrived)."""
        return self.table.config

    def get(self, timeout: float = 5.0) -> AppConfig | None:
        """``GetConfig`` once (``None``: the app has no config); also keeps it in memory."""
        try:
            message = self._get(
                GetConfigRequest(app=self.app), metadata=self._metadata, timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self.stats.missing += 1
                return None
            self._failed(exc)
            raise
        self._apply(config_from_message(message))
        return self.config

    def start(self) -> None:
        """Open the stream on a daemon thread. Idempotent."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"llmopt-watch-{self.app}", daemon=True
            )
            self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until a first config arrived or a first attempt failed; False on timeout."""
        return self._first.wait(timeout)

    def stop(self) -> None:
        """Cancel the stream, stop the thread, close an owned channel."""
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join()
        if self._own:
            self._channel.close()

    def _apply(self, config: AppConfig) -> None:
        self.stats.fetches += 1
        if self.stats.consecutive_failures:
            _log.warning("llmopt config stream of %r is back", self.app)
        self.stats.consecutive_failures = 0
        self.stats.last_success = self._clock()
        self._take(config)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            request = WatchConfigRequest(app=self.app)
            if self.stats.version is not None:
                request.after_version = self.stats.version
            try:
                self._call = self._watch(request, metadata=self._metadata)
                for message in self._call:
                    self._apply(config_from_message(message))
                    self._first.set()
                    backoff = 0.0
            except grpc.RpcError as exc:
                if self._stop.is_set():
                    return
                self._failed(exc)
            self._first.set()
            backoff = min(max(0.5, 2 * backoff), _MAX_BACKOFF_S)
            self._stop.wait(backoff)
