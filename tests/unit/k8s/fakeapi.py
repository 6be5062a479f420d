"""A tiny real HTTP server on 127.0.0.1 that answers like an API server, from a script; and fake time.

Imported by the k8s unit tests (``sys.path``: tests are not a package) and served by ``conftest.py``.

The transport under test talks real HTTP to it through the real ``kubernetes`` ``ApiClient`` (no mock
of the client): routes answer scripted statuses, headers and bodies, or reset the connection, and
every request is recorded. Time is fake: the transport's ``sleep`` advances a fake clock, so retry
and backoff tests assert the waits chosen without waiting.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubernetes import client

RESET = "reset"  # an answer that drops the connection with a TCP RST instead of responding


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


#: (status, headers, body): a dict body is sent as JSON, bytes as they are; or RESET.
Answer = tuple[int, dict[str, str], Any] | str
Route = Callable[[Seen], Answer]


def status(code: int, reason: str, message: str = "", causes: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A Kubernetes ``Status`` body as the API server sends it with an error."""
    doc: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
                           "message": message or reason, "code": code}
    if causes is not None:
        doc["details"] = {"causes": causes}
    return doc


@dataclass
class FakeApiServer:
    """Routes by (method, path); a list of answers is played in order and its last one repeats."""

    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, path: str, *answers: Answer) -> None:
        """Answer ``method path`` with ``answers`` in turn (the last one for every later request)."""
        queue = list(answers)

        def play(_: Seen) -> Answer:
            with self._lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]

        self.routes[(method, path)] = play

    def route(self, method: str, path: str, fn: Route) -> None:
        """Answer ``method path`` with whatever ``fn`` returns for the request."""
        self.routes[(method, path)] = fn

    def requests(self, method: str = "", path: str = "") -> list[Seen]:
        """Requests received, optionally only those of one method and path."""
        return [s for s in self.seen if (not method or s.method == method) and (not path or s.path == path)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        seen = Seen(self.command, parts.path, parse_qs(parts.query), headers, body)
        api = self.server.api
        with api._lock:
            api.seen.append(seen)
        route = api.routes.get((self.command, parts.path))
        answer = route(seen) if route else (404, {}, status(404, "NotFound", f"{parts.path} not found"))
        if answer == RESET:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        assert not isinstance(answer, str)
        code, headers, payload = answer
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response_only(code)
        if "Date" not in headers:  # a scripted Date replaces the real one (the lock reads the server's clock)
            self.send_header("Date", self.date_time_string())
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Type" not in headers:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    api: FakeApiServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # resets we cause surface here as broken pipes


class FakeTime:
    """A monotonic clock that only moves when something sleeps (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def api_for(url: str) -> client.ApiClient:
    """A plain ``ApiClient`` for ``url``, configured as :func:`k3smig_lib.k8s.client.api_client` would."""
    cfg = client.Configuration(host=url)
    cfg.retries = 0
    return client.ApiClient(cfg)


def start_server() -> tuple[FakeApiServer, ThreadingHTTPServer]:
    """A scripted API server on a free 127.0.0.1 port, serving in a daemon thread (stop: ``shutdown()``)."""
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.api = FakeApiServer(port=httpd.server_address[1])
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return httpd.api, httpd


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then closed again)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
