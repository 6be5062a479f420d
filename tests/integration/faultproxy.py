"""A fault-injecting reverse proxy in front of a sandbox API server, for the retry and relist tests.

Clients talk plain HTTP to ``http://127.0.0.1:<port>`` (a kubeconfig written by
:meth:`FaultProxy.write_kubeconfig`, same bearer token as the sandbox's); the proxy forwards each
request over HTTPS to the real API server, verifying it against the sandbox CA. Because the proxy
terminates HTTP, it can answer a request itself: a status (429 with ``Retry-After``, 503, 410 Gone
on a ``continue=`` page) or a TCP reset (before the response, or halfway through the body). A
fault can also run a hook just before its action (``before``): a rival's real write landing between
two requests of the client, so a race is played against the real API server at an exact moment.

Faults follow a schedule: each :class:`Fault` matches requests by method, path and query substring,
lets ``skip`` matches through, then fires ``times`` times (``-1``: until stopped). Every request is
recorded (:attr:`FaultProxy.seen`) with its monotonic time, so tests can count calls and measure the
waits between them. The proxy listens on 127.0.0.1 only, stops itself after ``lifetime`` seconds and
is stopped by the test (context manager).
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

Action = Literal["status", "reset", "reset_mid_body", "cut_stream", "pass"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
_REASONS = {409: "Conflict", 410: "Expired", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable"}


@dataclass
class Fault:
    """One scheduled fault.

    Attributes:
        action: ``status`` (answer ``status`` itself), ``reset`` (TCP RST instead of a response),
            ``reset_mid_body`` (forward, send half of the body, then RST), ``cut_stream`` (relay
            a websocket for ``after`` bytes, then RST), ``pass`` (forward untouched: for ``before``).
        status: HTTP status for ``status``.
        retry_after: seconds for the ``Retry-After`` header (``status`` only), or None.
        times: matching requests that get the fault; -1 = all of them.
        skip: matching requests let through before the fault starts.
        method: match this method only (``""``: any).
        path: match paths containing this (``""``: any).
        query: match query strings containing this (``continue=``).
        not_query: and not containing this, when set (``dryRun=``: real writes only).
        after: ``cut_stream``: bytes relayed to the client before the cut.
        before: run when the fault fires, before its action and before the request is forwarded
            (a rival's write against the real server); it runs in the proxy's handler thread.
    """

    action: Action = "status"
    status: int = 503
    retry_after: float | None = None
    times: int = 1
    skip: int = 0
    method: str = ""
    path: str = ""
    query: str = ""
    after: int = 0
    not_query: str = ""
    before: Callable[[], None] | None = None
    fired: int = 0

    def matches(self, method: str, path: str, query: str) -> bool:
        """True when the request is one this fault is about."""
        return ((not self.method or self.method == method) and self.path in path and self.query in query
                and not (self.not_query and self.not_query in query))

    def take(self) -> bool:
        """Consume one matching request; True when this one gets the fault."""
        if self.skip > 0:
            self.skip -= 1
            return False
        if self.times == -1 or self.fired < self.times:
            self.fired += 1
            return True
        return False


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and what it did with it."""

    at: float
    method: str
    path: str
    query: str
    status: int  # answered or forwarded status; 0 for a reset
    fault: str  # "" when forwarded untouched; "pass" when forwarded after a ``before`` hook


@dataclass
class _Upstream:
    host: str
    port: int
    ca_file: str


def status_body(status: int, message: str) -> bytes:
    """A Kubernetes ``Status`` object, as the API server would send it."""
    doc = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
           "reason": _REASONS.get(status, "Unknown"), "code": status}
    return json.dumps(doc).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr logging
        return

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET  # noqa: N815

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        if self.headers.get("Upgrade", "").lower() == "websocket":
            fault = self.server.proxy.pick(self.command, parts.path, parts.query)
            self.server.proxy.run_before(fault)
            label = "" if fault is None else "pass" if fault.action == "pass" else "cut_stream"
            self.server.proxy.record(self.command, parts.path, parts.query, 101, label)
            self._tunnel(fault.after if fault is not None and fault.action == "cut_stream" else -1)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.server.proxy.pick(self.command, parts.path, parts.query)
        self.server.proxy.run_before(fault)
        if fault is not None and fault.action == "reset":
            self.server.proxy.record(self.command, parts.path, parts.query, 0, "reset")
            self._reset()
            return
        if fault is not None and fault.action == "status":
            self.server.proxy.record(self.command, parts.path, parts.query, fault.status, f"status {fault.status}")
            self._answer(fault)
            return
        status, headers, payload = self._forward(body)
        cut = fault is not None and fault.action != "pass"
        label = "" if fault is None else "pass" if not cut else "reset_mid_body"
        self.server.proxy.record(self.command, parts.path, parts.query, 0 if cut else status, label)
        self._relay(status, headers, payload, cut=cut)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        up = self.server.proxy.upstream
        conn = http.client.HTTPSConnection(up.host, up.port, timeout=30,
                                           context=ssl.create_default_context(cafile=up.ca_file))
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except OSError as e:  # upstream down: say so as a gateway would
            return 502, [("Content-Type", "application/json")], status_body(502, f"upstream: {type(e).__name__}")
        finally:
            conn.close()

    def _tunnel(self, cut_after: int) -> None:
        """Relay a websocket (exec) byte for byte; with ``cut_after`` >= 0, reset both sides after that many bytes."""
        up = self.server.proxy.upstream
        raw = socket.create_connection((up.host, up.port), timeout=30)
        tls = ssl.create_default_context(cafile=up.ca_file).wrap_socket(raw, server_hostname=up.host)
        lines = [f"{self.command} {self.path} HTTP/1.1", f"Host: {up.host}:{up.port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() != "host"]
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = tls.recv(4096)
            if not chunk:
                break
            head += chunk
        self.connection.sendall(head)
        stop = threading.Event()

        def upstream_to_client() -> None:
            sent = len(head.partition(b"\r\n\r\n")[2])
            try:
                while not stop.is_set():
                    try:
                        data = tls.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    if cut_after >= 0 and sent + len(data) > cut_after:
                        self.connection.sendall(data[: max(0, cut_after - sent)])
                        break
                    self.connection.sendall(data)
                    sent += len(data)
            except OSError:
                pass
            stop.set()

        def client_to_upstream() -> None:
            try:
                while not stop.is_set():
                    try:
                        data = self.connection.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    tls.sendall(data)
            except OSError:
                pass
            stop.set()

        threads = [threading.Thread(target=f, daemon=True) for f in (upstream_to_client, client_to_upstream)]
        self.connection.settimeout(1.0)
        tls.settimeout(1.0)
        for t in threads:
            t.start()
        while not stop.wait(0.5):
            pass
        if cut_after >= 0:
            self._reset()
        tls.close()
        self.close_connection = True

    def _relay(self, status: int, headers: list[tuple[str, str]], payload: bytes, *, cut: bool) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP | {"content-length"}:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if cut:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(payload)

    def _answer(self, fault: Fault) -> None:
        payload = status_body(fault.status, f"injected by the k3smig fault proxy ({fault.status})")
        self.send_response(fault.status)
        self.send_header("Content-Type", "application/json")
        if fault.retry_after is not None:
            self.send_header("Retry-After", str(int(fault.retry_after)))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Close the client connection with a TCP RST (SO_LINGER 0), as a crashed peer would."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # resets we cause surface here as broken pipes; nothing to report


@dataclass
class FaultProxy:
    """The proxy; use as a context manager (``with FaultProxy.for_context(kc, ctx) as proxy``).

    Attributes:
        upstream: API server address and CA.
        faults: the schedule, consulted in order; the first fault that fires wins.
        lifetime: seconds after which the proxy stops by itself.
        seen: every request, in arrival order.
        hook_errors: what ``before`` hooks raised (the request then gets no answer); tests assert it empty.
    """

    upstream: _Upstream
    faults: list[Fault] = field(default_factory=list)
    lifetime: float = 300.0
    seen: list[Seen] = field(default_factory=list)
    hook_errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None
    _timer: threading.Timer | None = None
    _ca_dir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def for_context(cls, kubeconfig: Path, context: str, **kw: Any) -> FaultProxy:
        """A proxy in front of the API server of ``context`` in ``kubeconfig`` (CA taken from it)."""
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == context)
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        url = urlsplit(cluster["server"])
        ca_dir = tempfile.TemporaryDirectory(prefix="k3smig-faultproxy-")
        ca_file = Path(ca_dir.name) / "ca.crt"
        ca_file.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
        proxy = cls(_Upstream(url.hostname or "127.0.0.1", url.port or 443, str(ca_file)), **kw)
        proxy._ca_dir = ca_dir
        return proxy

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "start the proxy first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        """Listen on a free 127.0.0.1 port and serve in a background thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        threading.Thread(target=self._server.serve_forever, name="k3smig-faultproxy", daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listener (idempotent)."""
        with self._stop_lock:  # the lifetime timer and the test may stop at the same time
            if self._timer is not None and self._timer is not threading.current_thread():
                self._timer.cancel()
            if self._server is not None:
                self._server.shutdown()  # returns once serve_forever has left its loop
                self._server.server_close()
                self._server = None
            if self._ca_dir is not None:
                self._ca_dir.cleanup()
                self._ca_dir = None

    @property
    def running(self) -> bool:
        """True until the listener is closed."""
        return self._server is not None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_faults(self, *faults: Fault) -> None:
        """Replace the schedule."""
        with self._lock:
            self.faults = list(faults)

    def pick(self, method: str, path: str, query: str) -> Fault | None:
        """The fault for this request, if one fires (consumes it)."""
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path, query) and fault.take():
                    return fault
        return None

    def run_before(self, fault: Fault | None) -> None:
        """Run the ``before`` hook of a fault that fired; what it raises is kept in :attr:`hook_errors`."""
        if fault is None or fault.before is None:
            return
        try:
            fault.before()
        except Exception as e:
            with self._lock:
                self.hook_errors.append(e)
            raise

    def record(self, method: str, path: str, query: str, status: int, fault: str) -> None:
        """Log one request."""
        with self._lock:
            self.seen.append(Seen(time.monotonic(), method, path, query, status, fault))

    def requests(self, path: str = "", query: str = "") -> list[Seen]:
        """Recorded requests whose path and query contain the given substrings."""
        with self._lock:
            return [s for s in self.seen if path in s.path and query in s.query]

    def write_kubeconfig(self, kubeconfig: Path, context: str, dest: Path) -> Path:
        """Write ``dest``: one context named ``context`` that reaches the cluster through this proxy.

        The user entry (bearer token) is copied from ``kubeconfig``; the file is created 0600.
        """
        cfg = yaml.safe_load(kubeconfig.read_text())
        ctx = next(c for c in cfg["contexts"] if c["name"] == context)
        user = next(u for u in cfg["users"] if u["name"] == ctx["context"]["user"])
        out = {"apiVersion": "v1", "kind": "Config", "current-context": context, "preferences": {},
               "clusters": [{"name": "faultproxy", "cluster": {"server": self.url}}],
               "users": [user], "contexts": [{"name": context, "context": {"cluster": "faultproxy",
                                                                          "user": user["name"]}}]}
        dest.touch(mode=0o600)
        dest.write_text(yaml.safe_dump(out, sort_keys=False))
        return dest
