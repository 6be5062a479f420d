"""Deterministic identities, times and fake secret material shared by every builder.

A real export is full of server-chosen values (UIDs, IPs, random name suffixes, tokens). The
example derives each one from a label with a hash, so the output is stable and still looks like
what a server would have chosen.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

Obj = dict[str, Any]

CLUSTER_NAME = "prod-k8s"
K8S_VERSION = "v1.31.4"
DISTRIBUTION = "kapsule"
REGION = "fr-par"
ZONE = "fr-par-1"
EXPORTED_AT = "2025-01-20T10:00:00Z"
#: The clock of the example: the cluster was created here.
CLUSTER_CREATED = "2024-02-05T08:14:21Z"

_UID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://example.org/k3smig/prod-k8s")
#: Alphabet Kubernetes uses for generated name suffixes (rand.SafeEncodeString).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_TOKEN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_SERVICE_CIDR = ipaddress.ip_network("10.32.0.0/20")


def uid(*parts: str) -> str:
    """Return a stable UUID for an object identified by ``parts`` (kind, namespace, name…)."""
    return str(uuid.uuid5(_UID_NAMESPACE, "/".join(parts)))


def det_bytes(label: str, n: int) -> bytes:
    """Return ``n`` pseudo-random bytes that depend only on ``label``."""
    return hashlib.shake_256(f"k3smig-example:{label}".encode()).digest(n)


def _pick(label: str, n: int, alphabet: str) -> str:
    raw = det_bytes(label, n * 2)
    return "".join(alphabet[int.from_bytes(raw[i * 2 : i * 2 + 2], "big") % len(alphabet)] for i in range(n))


def suffix(label: str, n: int = 5) -> str:
    """Return a generated-name suffix like the ones the API server and controllers pick."""
    return _pick("suffix:" + label, n, _SAFE)


def secret_token(label: str, n: int = 40, alphabet: str = _TOKEN) -> str:
    """Return a fake but high-entropy secret value derived from ``label``."""
    return _pick("secret:" + label, n, alphabet)


def hex_id(label: str, n: int = 64) -> str:
    """Return ``n`` hex digits derived from ``label`` (container IDs, digests)."""
    return det_bytes("hex:" + label, (n + 1) // 2).hex()[:n]


def b64(data: bytes | str) -> str:
    """Base64 text of ``data`` (Secret ``data`` values)."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def ts_add(base: str, seconds: float) -> str:
    """Return the RFC 3339 timestamp ``seconds`` after ``base``."""
    when = datetime.strptime(base, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (when + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(ts: str) -> int:
    """Seconds since the epoch of an RFC 3339 timestamp."""
    return int(datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp())


def service_ip(namespace: str, name: str) -> str:
    """A ClusterIP in the Kapsule service range (10.32.0.0/20), stable per Service."""
    offset = int.from_bytes(det_bytes(f"svc:{namespace}/{name}", 4), "big") % (_SERVICE_CIDR.num_addresses - 20)
    return str(_SERVICE_CIDR.network_address + 20 + offset)


def node_port(namespace: str, name: str, port: int) -> int:
    """An auto-allocated NodePort (30000-32767), stable per Service port."""
    return 30000 + int.from_bytes(det_bytes(f"np:{namespace}/{name}/{port}", 4), "big") % 2768


def labels_selector(labels: dict[str, str]) -> str:
    """``k=v,k=v`` form of a label map, as controllers write selectors into status."""
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
