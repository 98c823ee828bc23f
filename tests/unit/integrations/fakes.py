"""Injected stand-ins for time and randomness, and real local HTTP servers that speak like
Jira Cloud (REST v3), GitHub (REST) and Anthropic (Messages API).

Each server records every request and answers from its script first (errors, rate limits), then
from a small in-memory model of the real API with its real response shapes.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import socket
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class RecordingSleep:
    """An ``asyncio.sleep`` stand-in that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """A JSON answer."""
    return Reply(status, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}


class FakeServer:
    """Records requests; answers from the script in order, then from :meth:`respond`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self.lock = threading.RLock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self._script.extend(replies)

    def handle(self, request: Recorded) -> Reply:
        with self.lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
            return self.respond(request)

    def respond(self, request: Recorded) -> Reply:
        return Reply(418, "unscripted")


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = fake.handle(Recorded(self.command, self.path, headers, body))
            data = reply.body.encode()
            self.send_response(reply.status)
            if not any(k.lower() == "content-type" for k in reply.headers):
                self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(fake_type: type[FakeServer], *args: Any) -> Iterator[Any]:
    """Run a fake on 127.0.0.1, an ephemeral port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake = fake_type(server.server_address[1], *args)
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- Jira Cloud REST v3 ----------------------------------------------------------------------

JIRA_EMAIL = "bot@example.com"
JIRA_TOKEN = "ATATT3xJiraTokenSecret0123456789"
JIRA_PROJECT = "OPS"


class FakeJira(FakeServer):
    """Issues, comments and JQL label search of one project."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(10001)

    def respond(self, request: Recorded) -> Reply:
        auth = base64.b64encode(f"{JIRA_EMAIL}:{JIRA_TOKEN}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {auth}":
            return Reply(401, "Client must be authenticated to access this resource.")
        route = request.route
        if request.method == "POST" and route == "/rest/api/3/issue":
            return self._create(request.json()["fields"])
        match = re.fullmatch(r"/rest/api/3/issue/([A-Z]+-\d+)/comment", route)
        if request.method == "POST" and match:
            return self._comment(match.group(1), request.json())
        if request.method == "POST" and route == "/rest/api/3/search/jql":
            labels = re.findall(r'labels = "([^"]+)"', request.json()["jql"])
            found = [i for i in self.issues.values() if set(labels) <= set(i["labels"])]
            issues = [{"id": i["id"], "key": i["key"], "fields": {}} for i in found[:1]]
            return json_reply(200, {"issues": issues, "isLast": True})
        return json_reply(404, {"errorMessages": ["Not found"], "errors": {}})

    def _create(self, fields: dict[str, Any]) -> Reply:
        errors = {}
        if fields.get("project", {}).get("key") != JIRA_PROJECT:
            errors["project"] = "valid project is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        description = fields.get("description")
        if not (isinstance(description, dict) and description.get("type") == "doc"):
            errors["description"] = "Operation value must be an Atlassian Document."
        if errors:
            return json_reply(400, {"errorMessages": [], "errors": errors})
        issue_id = str(next(self._ids))
        key = f"{JIRA_PROJECT}-{len(self.issues) + 1}"
        self.issues[key] = {
            "id": issue_id,
            "key": key,
            "labels": fields.get("labels", []),
            "fields": fields,
        }
        return json_reply(
            201,
            {"id": issue_id, "key": key, "self": f"{self.base_url}/rest/api/3/issue/{issue_id}"},
        )

    def _comment(self, key: str, body: dict[str, Any]) -> Reply:
        if key not in self.issues:
            return json_reply(
                404,
                {
                    "errorMessages": [
                        "Issue does not exist or you do not have permission to see it."
                    ],
                    "errors": {},
                },
            )
        comment = {"id": str(next(self._ids)), "body": body["body"]}
        self.comments.setdefault(key, []).append(comment)
        return json_reply(201, comment)


# --- GitHub REST ------------------------------------------------------------------------------

GITHUB_TOKEN = "ghp_GitHubTokenSecret0123456789abcdef"
GITHUB_REPO = "acme/llm-config"


def git_blob_sha(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeGitHub(FakeServer):
    """Issues, comments and contents of one repository, with rate-limit headers."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.issues: list[dict[str, Any]] = []
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.files: dict[str, bytes] = {}
        self._ids = itertools.count(900001)

    def _reply(self, status: int, body: Any) -> Reply:
        limits = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-reset": "1764403200",
            "x-ratelimit-used": "1",
            "x-ratelimit-resource": "core",
        }
        return json_reply(status, body, limits)

    def respond(self, request: Recorded) -> Reply:
        if request.headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
            return self._reply(
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
            )
        base = f"/repos/{GITHUB_REPO}"
        route, method = request.route, request.method
        if route == f"{base}/issues" and method == "POST":
            return self._create(request.json())
        if route == f"{base}/issues" and method == "GET":
            label = request.query.get("labels", "")
            found = [i for i in self.issues if label in [x["name"] for x in i["labels"]]]
            return self._reply(200, found[: int(request.query.get("per_page", "30"))])
        match = re.fullmatch(rf"{base}/issues/(\d+)/comments", route)
        if match and method == "POST":
            number = int(match.group(1))
            if number > len(self.issues):
                return self._reply(404, {"message": "Not Found"})
            comment = {"id": next(self._ids), "body": request.json()["body"]}
            comment["html_url"] = f"https://github.com/{GITHUB_REPO}/issues/{number}"
            self.comments.setdefault(number, []).append(comment)
            return self._reply(201, comment)
        if route.startswith(f"{base}/contents/"):
            return self._contents(route.removeprefix(f"{base}/contents/"), request)
        return self._reply(404, {"message": "Not Found"})

    def _create(self, body: dict[str, Any]) -> Reply:
        if not body.get("title"):
            return self._reply(
                422,
                {
                    "message": "Validation Failed",
                    "errors": [{"resource": "Issue", "code": "missing_field", "field": "title"}],
                    "documentation_url": "https://docs.github.com/rest/issues/issues#create-an-issue",
                },
            )
        number = len(self.issues) + 1
        issue = {
            "id": next(self._ids),
            "number": number,
            "title": body["title"],
            "body": body.get("body"),
            "state": "open",
            "labels": [{"name": name} for name in body.get("labels", [])],
            "html_url": f"https://github.com/{GITHUB_REPO}/issues/{number}",
        }
        self.issues.append(issue)
        return self._reply(201, issue)

    def _contents(self, path: str, request: Recorded) -> Reply:
        current = self.files.get(path)
        if request.method == "GET":
            if current is None:
                return self._reply(404, {"message": "Not Found"})
            return self._reply(
                200,
                {
                    "type": "file",
                    "path": path,
                    "sha": git_blob_sha(current),
                    "content": base64.b64encode(current).decode(),
                },
            )
        body = request.json()
        if current is not None and "sha" not in body:
            return self._reply(422, {"message": 'Invalid request.\n\n"sha" wasn\'t supplied.'})
        if current is not None and body["sha"] != git_blob_sha(current):
            return self._reply(409, {"message": f"{path} does not match {body['sha']}"})
        content = base64.b64decode(body["content"])
        self.files[path] = content
        sha = git_blob_sha(content)
        answer = {
            "content": {
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "sha": sha,
                "html_url": f"https://github.com/{GITHUB_REPO}/blob/main/{path}",
            },
            "commit": {"sha": hashlib.sha1(sha.encode()).hexdigest(), "message": body["message"]},
        }
        return self._reply(201 if current is None else 200, answer)


# --- Anthropic Messages API ------------------------------------------------------------------

ANTHROPIC_KEY = "sk-ant-api03-AnthropicKeySecret0123456789"


def anthropic_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    return json_reply(
        status, {"type": "error", "error": {"type": kind, "message": message}}, headers
    )


class FakeAnthropic(FakeServer):
    """``POST /v1/messages``: checks the key, version and body; answers ``answer``."""

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.answer = "Classify the ticket {ticket} as bug, billing or other. Reply with the label."

    def respond(self, request: Recorded) -> Reply:
        if request.route != "/v1/messages" or request.method != "POST":
            return anthropic_error(404, "not_found_error", "Not found")
        if request.headers.get("x-api-key") != ANTHROPIC_KEY:
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        if request.headers.get("anthropic-version") != "2023-06-01":
            return anthropic_error(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        body = request.json()
        for name in ("model", "max_tokens", "messages"):
            if name not in body:
                return anthropic_error(400, "invalid_request_error", f"{name}: Field required")
        prompt = body.get("system", "") + "".join(m["content"] for m in body["messages"])
        return json_reply(
            200,
            {
                "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": self.answer}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {
                    "input_tokens": len(prompt) // 4,
                    "output_tokens": len(self.answer) // 4,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
            {"request-id": "req_018EeWyXxfu5pfWkrYcMdjWG"},
        )


def options(
    sleep: RecordingSleep,
    *,
    breaker: Any = None,
    attempts: int = 4,
    now: Any = None,
    monotonic: Any = None,
) -> Any:
    """ClientOptions for tests: recorded sleeps, rng() = 0.5, injected clocks."""
    from integrations import ClientOptions, RetryPolicy

    extra: dict[str, Any] = {}
    if now is not None:
        extra["now"] = now
    if monotonic is not None:
        extra["monotonic"] = monotonic
    return ClientOptions(
        policy=RetryPolicy(attempts=attempts),
        breaker=breaker,
        sleep=sleep,
        rng=lambda: 0.5,
        **extra,
    )


def assert_no_secret(text: str, *secrets: str) -> None:
    """None of ``secrets`` (nor its basic-auth form) appears in ``text``."""
    for secret in secrets:
        assert secret not in text
        assert base64.b64encode(f"{JIRA_EMAIL}:{secret}".encode()).decode() not in text
