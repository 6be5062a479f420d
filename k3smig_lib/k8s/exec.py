"""Commands in pods through ``pods/exec``: binary channels, streamed both ways, completion proven.

The Python client's own exec helpers decode output as text unless asked not to, buffer whole
channels in memory and report exit codes that can race to 0 (RELIABILITY-CASES §4.1, python#2328).
:class:`PodExec` talks the channel protocol itself over the client's websocket (same kubeconfig,
TLS and token as every other call): stdout is read frame by frame as a byte stream (``read``), stdin
is written in bounded frames (``write``), stderr is kept (bounded) for messages, and the exit code
is taken from an in-band sentinel the command prints to stderr (``__K3SMIG_RC=<n>``), cross-checked
with the error channel's ``Status``. Memory stays flat whatever the stream size.

Stdin is never relied upon to reach end-of-file (kwok never closes it, and v4 servers cannot):
commands read a known number of bytes (``head -c``) or stop at the tar end-of-archive marker.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
from kubernetes.client import ApiClient, CoreV1Api
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream as k8s_stream

from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.errors import ApiCall, fatal_class
from k3smig_lib.log import logger

STDIN, STDOUT, STDERR, ERROR, CLOSE = 0, 1, 2, 3, 255
#: Bytes per stdin frame: large enough to keep the pipe full, small enough for every proxy on the way.
FRAME = 256 * 1024
#: Stdout bytes read ahead of the consumer at most (the reader thread waits beyond it).
PREFETCH = 8 * 1024 * 1024
_CHUNK_SOME = 1 << 20
#: Marker the commands print on stderr just before exiting: the only exit code k3smig trusts.
RC_MARK = "__K3SMIG_RC="
_RC = re.compile(r"__K3SMIG_RC=(\d+)")
_STDERR_KEEP = 64 * 1024
_OPCODE_BINARY, _OPCODE_TEXT, _OPCODE_CLOSE = 0x2, 0x1, 0x8


class ExecError(FatalError):
    """A command in a pod failed, was cut, or could not be started."""


@dataclass
class ExecResult:
    """How a finished command ended.

    Attributes:
        rc: exit code from the in-band sentinel (None when the sentinel never arrived: a cut stream).
        status: exit status from the error channel (0 success, a code, or -1 when absent).
        stderr: the command's standard error (sentinel line removed), cut to 64 KiB.
        stdout_bytes: bytes read from stdout.
        stdin_bytes: bytes written to stdin.
    """

    rc: int | None
    status: int
    stderr: str
    stdout_bytes: int
    stdin_bytes: int

    @property
    def ok(self) -> bool:
        """The sentinel arrived with 0 and the error channel did not report a failure."""
        return self.rc == 0 and self.status in (0, -1)


def status_code(frame: bytes) -> int:
    """Exit code from an error-channel ``Status`` (0 success, N for a failure, -1 when unreadable).

    A kubelet reports ``NonZeroExitCode`` with an ``ExitCode`` cause; kwok reports an internal error
    whose message ends in ``exit status N``.

    Examples:
        >>> status_code(b'{"status": "Success"}')
        0
        >>> status_code(b'{"status": "Failure", "details": {"causes": [{"reason": "ExitCode", "message": "2"}]}}')
        2
    """
    try:
        status = json.loads(frame)
    except ValueError:
        return -1
    if not isinstance(status, dict):
        return -1
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
            return int(cause["message"])
    found = re.search(r"exit status (\d+)", str(status.get("message", "")))
    return int(found.group(1)) if found else 1


def result_of(stderr: bytes, status: int, stdout_bytes: int, stdin_bytes: int) -> ExecResult:
    r"""How a script ended, from its stderr (the ``__K3SMIG_RC=`` sentinel) and the transport's status.

    Examples:
        >>> result_of(b"tar: warning\n__K3SMIG_RC=0\n", 0, 10, 0).ok
        True
        >>> result_of(b"cut", -1, 10, 0).rc is None
        True
    """
    text = stderr.decode("utf-8", errors="replace")
    found = _RC.findall(text)
    rc = int(found[-1]) if found else None
    return ExecResult(rc, status, _RC.sub("", text).strip(), stdout_bytes, stdin_bytes)


def _binary_frame(prefix: bytes, payload: bytes | memoryview) -> bytes:
    r"""One masked, final, binary websocket frame carrying ``prefix + payload`` (RFC 6455 §5.2).

    Examples:
        >>> f = _binary_frame(b"\\x00", b"ab")
        >>> f[0], f[1] & 0x7F, len(f)
        (130, 3, 9)
    """
    body = np.frombuffer(prefix + bytes(payload), dtype=np.uint8)
    n = len(body)
    key = os.urandom(4)
    mask = np.frombuffer(key * (n // 4 + 1), dtype=np.uint8, count=n)
    if n < 126:
        header = bytes([0x82, 0x80 | n])
    elif n < 1 << 16:
        header = bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")
    return header + key + np.bitwise_xor(body, mask).tobytes()


def _handshake_status(reason: str) -> int:
    found = re.search(r"Handshake status (\d{3})", reason)
    return int(found.group(1)) if found else 0


class PodExec:
    r"""One command running in a pod, its channels read and written as byte streams.

    Args:
        api: the cluster's ``ApiClient`` (from :func:`k3smig_lib.k8s.client.api_client`).
        namespace: the pod's namespace.
        pod: the pod name.
        command: argv of the command (``["sh", "-c", script]``).
        container: container name (empty: the pod's only container).
        side: ``source``/``target``, for error classes and messages.
        idle_timeout: seconds without any frame before the stream counts as dead.

    Raises:
        ExecError: the exec could not be started (403 names the RBAC rule for ``pods/exec``).

    Examples:
        >>> script = "echo hi; echo __K3SMIG_RC=0 >&2"
        >>> with PodExec(api, "shop", "helper", ["sh", "-c", script]) as ex:  # doctest: +SKIP
        ...     ex.read_all(), ex.finish().ok
        (b'hi\\n', True)
    """

    def __init__(self, api: ApiClient, namespace: str, pod: str, command: Sequence[str], *, container: str = "",
                 side: str = "", idle_timeout: float = 300.0) -> None:
        self.namespace, self.pod, self.side = namespace, pod, side
        self.what = f"exec in pod {namespace}/{pod}"
        self.idle_timeout = idle_timeout
        self._buf = bytearray()
        self._stderr = bytearray()
        self._status = b""
        self._open = True
        self.broken = ""  # why the stream ended without a close frame ("" when it closed normally)
        self.stdout_bytes = 0
        self.stdin_bytes = 0
        kwargs: dict[str, Any] = {"command": list(command), "stdin": True, "stdout": True, "stderr": True,
                                  "tty": False, "binary": True, "_preload_content": False}
        if container:
            kwargs["container"] = container
        try:
            client = k8s_stream(CoreV1Api(api).connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
        except ApiException as e:
            raise self._start_error(str(e.reason or "")) from None
        self._ws: Any = client.sock
        self._ws.settimeout(idle_timeout)
        self._v5 = getattr(client, "subprotocol", "") == "v5.channel.k8s.io"
        self._start_reader()

    def _start_error(self, reason: str) -> FatalError:
        status = _handshake_status(reason)
        call = ApiCall("create", "pods/exec", namespace=self.namespace, name=self.pod, side=self.side)
        if status == 403:
            return fatal_class(self.side)(
                f"{call.label}: not allowed (HTTP 403)",
                fix=f"grant a Role in ns {self.namespace} rule {{apiGroups: [\"\"], resources: [\"pods/exec\"], "
                    f"verbs: [\"create\", \"get\"]}} (check with `kubectl auth can-i create pods/exec -n "
                    f"{self.namespace}`)")
        if status == 404:
            return fatal_class(self.side)(f"{call.label}: the pod is gone (HTTP 404)",
                                          fix="re-run; the helper pod was deleted before the command started")
        shown = f"HTTP {status}" if status else reason.split("-+-+-")[0].strip()[:160]
        return ExecError(f"{self.what}: the command could not be started ({shown})",
                         fix="check that the pod is Running and the API server can reach its node (kubelet)")

    # --- reading -------------------------------------------------------------------------------
    #
    # One reader thread owns the websocket's receiving side: it moves stdout into a bounded buffer
    # while the caller hashes and forwards what it already has, so the source keeps streaming while
    # the target is being written (as kubectl does with its goroutines). The buffer is bounded
    # (:data:`PREFETCH`), so memory stays flat: a slow consumer makes the reader wait, and TCP pushes
    # back on the pod.

    def _start_reader(self) -> None:
        self._cond = threading.Condition()
        self._done = False
        self._discard = False
        self._failure: BaseException | None = None
        self._reader = threading.Thread(target=self._read_loop, name=f"k3smig-exec-{self.pod}", daemon=True)
        self._reader.start()

    def _read_loop(self) -> None:
        try:
            while self._receive_one():
                pass
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            with self._cond:
                self._failure = e
        finally:
            with self._cond:
                self._done = True
                self._cond.notify_all()

    def _receive_one(self) -> bool:
        """Receive one frame into the channel buffers; False once the stream has ended."""
        try:
            opcode, frame = self._ws.recv_data_frame(True)
        except (TimeoutError, socket.timeout) as e:
            raise ExecError(f"{self.what}: no data for {self.idle_timeout:g}s; the stream is treated as dead",
                            fix="check the helper pod and the network, then re-run (the volume is re-copied)") from e
        except Exception as e:  # OSError, SSLError, websocket-client's own (closed connection, bad frame)
            ended = RC_MARK.encode() in self._stderr  # the command said it ended: a close without a frame is fine
            if self._open and not ended:
                self.broken = f"{type(e).__name__}: {str(e)[:120]}".rstrip(": ")
                logger.warning("%s: stream broken by %s", self.what, self.broken)
            return False
        if opcode == _OPCODE_CLOSE:
            return False
        data = frame.data or b""
        if opcode not in (_OPCODE_BINARY, _OPCODE_TEXT) or not data:
            return True
        channel, payload = data[0], memoryview(data)[1:]
        with self._cond:
            if channel == STDOUT and not self._discard:
                while len(self._buf) >= PREFETCH and not self._discard:
                    self._cond.wait()
                if not self._discard:
                    self._buf += payload
                    self._cond.notify_all()
            elif channel == STDERR:
                if len(self._stderr) < _STDERR_KEEP:
                    self._stderr += payload[: _STDERR_KEEP - len(self._stderr)]
                tail = bytes(payload)
                if RC_MARK.encode() in tail:  # the sentinel itself must never be cut away
                    self._stderr += b"\n" + tail[tail.rfind(RC_MARK.encode()):][:64]
            elif channel == ERROR:
                self._status += payload
        return True

    def _take(self, size: int, *, some: bool = False) -> bytes:
        """Up to ``size`` bytes (``-1``: all until the end; ``some``: what is there, waiting for a first byte)."""
        with self._cond:
            while not self._done and (len(self._buf) < size or size < 0) and not (some and self._buf):
                self._cond.wait()
            if self._failure is not None and not self._buf:
                failure, self._failure = self._failure, None
                raise failure
            n = len(self._buf) if size < 0 or some else min(size, len(self._buf))
            out = bytes(self._buf[:n])
            del self._buf[:n]
            self._cond.notify_all()
        self.stdout_bytes += len(out)
        return out

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes of stdout (``-1``: until the stream ends); ``b""`` at the end."""
        return self._take(size)

    def read_some(self) -> bytes:
        """Whatever stdout is buffered, waiting for some when nothing is; ``b""`` at the end."""
        return self._take(_CHUNK_SOME, some=True)

    def read_all(self) -> bytes:
        """All of stdout, until the command ends."""
        return self.read(-1)

    # --- writing -------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        """Send ``data`` to the command's stdin, in frames of :data:`FRAME` bytes.

        Frames are built here and masked with numpy (RFC 6455 requires a client to mask every frame
        with a random key; websocket-client's pure-Python masking was the slowest step of a transfer).

        Raises:
            ExecError: the stream closed before every byte was sent (the command ended or was cut).
        """
        view = memoryview(data)
        for start in range(0, len(view), FRAME):
            frame = _binary_frame(b"\x00", view[start:start + FRAME])
            try:
                with self._ws.lock:
                    self._ws.sock.sendall(frame)
            except Exception as e:  # a closed socket surfaces as OSError or a websocket exception
                self._open = False
                raise ExecError(f"{self.what}: stdin closed after {self.stdin_bytes} bytes ({type(e).__name__})",
                                fix="read the command's error below; the transfer is incomplete and not trusted"
                                ) from e
            self.stdin_bytes += min(FRAME, len(view) - start)
        return len(view)

    def close_stdin(self) -> None:
        """Signal end of input where the protocol allows it (v5); harmless otherwise."""
        if self._v5 and self._open:
            try:
                self._ws.send_binary(bytes([CLOSE, STDIN]))
            except Exception:  # noqa: BLE001 - the command may already have ended, which is fine
                logger.debug("%s: stdin close not sent (stream already closed)", self.what)

    # --- ending --------------------------------------------------------------------------------

    def finish(self, *, deadline: float = 600.0) -> ExecResult:
        """Read until the command ends (stdout left unread is discarded) and say how it ended.

        Raises:
            ExecError: the command did not end within ``deadline`` seconds.
        """
        with self._cond:
            self._discard = True
            self._buf.clear()
            self._cond.notify_all()
        self._reader.join(deadline)
        if self._reader.is_alive():
            self.close()
            raise ExecError(f"{self.what}: still running after {deadline:g}s",
                            fix="raise the helper timeout for very large volumes, or check the pod")
        if self._failure is not None:
            raise self._failure
        status = status_code(self._status) if self._status else -1
        return result_of(bytes(self._stderr), status, self.stdout_bytes, self.stdin_bytes)

    def close(self) -> None:
        """Close the websocket (the command is killed by the kubelet if still running)."""
        self._open = False
        with self._cond:
            self._discard = True
            self._cond.notify_all()
        try:
            self._ws.close()
        except Exception:  # noqa: BLE001 - closing a dead socket is not an error worth reporting
            logger.debug("%s: websocket already closed", self.what)

    def __enter__(self) -> PodExec:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def run(api: ApiClient, namespace: str, pod: str, script: str, *, stdin: bytes = b"", side: str = "",
        container: str = "", timeout: float = 600.0) -> tuple[bytes, ExecResult]:
    """Run a short ``sh -c`` script to completion; return its stdout and how it ended.

    For commands whose output fits in memory (manifests, probes); streams use :class:`PodExec`.
    """
    with PodExec(api, namespace, pod, ["sh", "-c", script], container=container, side=side,
                 idle_timeout=timeout) as ex:
        if stdin:
            ex.write(stdin)
            ex.close_stdin()
        out = ex.read_all()
        return out, ex.finish(deadline=timeout)


__all__ = ["FRAME", "RC_MARK", "ExecError", "ExecResult", "PodExec", "result_of", "run", "status_code"]
