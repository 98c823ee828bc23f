"""A local OpenAI-compatible HTTP server for tests: ``POST /v1/chat/completions``.

It answers like the real API (JSON, or server-sent events when ``stream`` is true, with a final
usage chunk when ``stream_options.include_usage`` is set), counts tokens as whitespace-separated
words, and records every request body. ``fail_next`` makes the next calls answer an HTTP error
(429 → the openai client's ``RateLimitError``). Run it with :func:`fake_openai`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeOpenAI:
    """What the server received, and errors to answer next."""

    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _words(messages: list[dict[str, Any]]) -> int:
    return sum(len(str(m.get("content", "")).split()) for m in messages)


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._json(404, {"error": {"message": "not found"}})
                return
            with state.lock:
                state.requests.append(body)
                status = state.fail_next.pop(0) if state.fail_next else None
            if status is not None:
                error = {"message": "fake failure", "type": "rate_limit_error", "code": None}
                self._json(status, {"error": error})
                return
            model = body.get("model", "unknown")
            prompt = _words(body.get("messages", []))
            text = f"answer from {model}"
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": len(text.split()),
                "total_tokens": prompt + len(text.split()),
            }
            base = {"id": "chatcmpl-fake", "created": int(time.time()), "model": model}
            if not body.get("stream"):
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                self._json(
                    200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
                )
                return
            self.send_response(200)
            self.send_header("content-type", "text/event-stream")
            self.send_header("connection", "close")
            self.end_headers()
            chunks: list[dict[str, Any]] = []
            for i, word in enumerate(text.split()):
                delta = {"content": word + " "} if i else {"role": "assistant", "content": word}
                chunks.append({"index": 0, "delta": delta, "finish_reason": None})
            chunks.append({"index": 0, "delta": {}, "finish_reason": "stop"})
            for choice in chunks:
                self._event({**base, "object": "chat.completion.chunk", "choices": [choice]})
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event(
                    {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}
                )
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
            self.wfile.flush()

    return Handler


@contextmanager
def fake_openai() -> Iterator[FakeOpenAI]:
    """Serve a :class:`FakeOpenAI` on a free loopback port; ``base_url`` ends with ``/v1``."""
    state = FakeOpenAI()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
