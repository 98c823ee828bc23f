"""A real local HTTP server that speaks like a Slack incoming webhook, driven by a script."""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

WEBHOOK_PATH = "/services/T0SECRETAA/B0SECRETBB/xoxHookToken9f8e7d6c5b4a"


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeSlack:
    """Records every request; answers each from the script, in order (418 when it runs out)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def url(self, path: str = WEBHOOK_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self._script.popleft() if self._script else Reply(418, "unscripted")


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.handle(Recorded("POST", self.path, headers, body))
            data = reply.body.encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def slack_server() -> Iterator[FakeSlack]:
    """A Slack-like webhook server on 127.0.0.1, an ephemeral port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake = FakeSlack(server.server_address[1])
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
