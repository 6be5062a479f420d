"""HTTPS probes with SNI and Host set — ``curl --resolve host:443:address`` without DNS.

Before any DNS change, every host is asked through the new ingress address as if DNS already pointed
there: the TLS handshake sends the host as SNI, the request carries it as ``Host``. What is compared:
the certificate the ingress serves (its serial must be the migrated Secret's: the proof it serves the
kept certificate), the HTTP status and a hash of the body of a configurable path, against the same
probe through the source address. The chain is not verified here — the probe's job is to show *which*
certificate is served, and the serial comparison does that even for a private CA.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
from dataclasses import dataclass

from cryptography import x509

MAX_BODY = 1 << 20


@dataclass(frozen=True)
class ProbeResult:
    """One probe: where it went, what the TLS layer and HTTP answered."""

    host: str
    address: str
    path: str
    tls: bool
    serial: str
    status: int
    body_sha256: str
    error: str = ""


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host, int(port)) if host else (address, 443)


def probe(host: str, address: str, path: str = "/", timeout: float = 5.0) -> ProbeResult:
    """Connect to ``address`` (``ip:port``), handshake with SNI ``host``, ``GET path`` with ``Host: host``.

    Never raises for network faults: they are the probe's result (``error``), the go/no-go reads it.
    """
    ip, port = _split(address)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((ip, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True) or b""
            serial = format(x509.load_der_x509_certificate(der).serial_number, "X") if der else ""
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: k3smig-probe\r\n"
                        "Connection: close\r\n\r\n".encode())
            data = b""
            while len(data) < MAX_BODY:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, ssl.SSLError, ValueError) as e:
        return ProbeResult(host, address, path, False, "", 0, "", f"{type(e).__name__}: {e}")
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b"\r\n", 1)[0].split()[1])
    except (IndexError, ValueError):
        return ProbeResult(host, address, path, True, serial, 0, "", "no HTTP status line")
    return ProbeResult(host, address, path, True, serial, status, hashlib.sha256(body).hexdigest()[:16])
