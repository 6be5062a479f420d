"""Events from the last hour before the export (older ones have expired, as on a real cluster)."""

from __future__ import annotations

from dataclasses import dataclass

from _gen.common import Obj, hex_id, uid
from _gen.server import Cluster, applied


@dataclass(frozen=True)
class Seen:
    """One event: what happened to which object, how often, and who reported it."""

    namespace: str
    involved: tuple[str, str, str]  # apiVersion, kind, name
    reason: str
    message: str
    first: str
    last: str
    count: int = 1
    type: str = "Normal"
    component: str = "kubelet"
    host: str = ""
    field_path: str = ""


def event(c: Cluster, seen: Seen) -> Obj:
    """Create the core/v1 Event for ``seen``."""
    api_version, kind, name = seen.involved
    involved: Obj = {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "namespace": seen.namespace,
        "uid": uid(kind, seen.namespace, name),
    }
    if seen.field_path:
        involved["fieldPath"] = seen.field_path
    source: Obj = {"component": seen.component}
    if seen.host:
        source["host"] = seen.host
    manifest: Obj = {
        "apiVersion": "v1",
        "kind": "Event",
        "count": seen.count,
        "eventTime": None,
        "firstTimestamp": seen.first,
        "lastTimestamp": seen.last,
        "involvedObject": involved,
        "message": seen.message,
        "reason": seen.reason,
        "reportingComponent": seen.component,
        "reportingInstance": seen.host,
        "source": source,
        "type": seen.type,
        "metadata": {
            "name": f"{name}.{hex_id('event:' + name + seen.reason + seen.first, 16)}",
            "namespace": seen.namespace,
        },
    }
    return applied(c, manifest, seen.first, manager=seen.component)
