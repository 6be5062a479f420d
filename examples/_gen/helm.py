"""Helm 3 release Secrets (``sh.helm.release.v1.<release>.v<N>``) encoded exactly as Helm stores them.

Helm serialises the release to JSON, gzips it, base64-encodes the result and stores that text as
``data.release``; the API then base64-encodes the Secret value once more. So reading one back is
``base64 -d | base64 -d | gunzip``. Each revision is its own Secret; older ones are ``superseded``.
"""

from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass, field

from _gen.common import Obj, b64, epoch
from _gen.server import Cluster, Write, applied
from _gen.yamlout import dump

_STRIP = ("managedFields", "uid", "resourceVersion", "creationTimestamp", "generation")


@dataclass(frozen=True)
class Chart:
    """Chart metadata as ``Chart.yaml`` declares it."""

    name: str
    version: str
    app_version: str
    description: str
    home: str
    templates: dict[str, str] = field(default_factory=dict)
    default_values: Obj = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The ``helm.sh/chart`` label value."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class Revision:
    """One ``helm install``/``helm upgrade``."""

    time: str
    values: Obj


def encode_release(release: Obj) -> str:
    """Helm's storage encoding: base64 of gzipped JSON (gzip header mtime 0, like Go's writer)."""
    raw = json.dumps(release, separators=(",", ":"), sort_keys=False).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()


def decode_release(secret: Obj) -> Obj:
    """Inverse of the storage encoding, from a release Secret as exported."""
    helm_text = base64.b64decode(secret["data"]["release"])
    decoded: Obj = json.loads(gzip.decompress(base64.b64decode(helm_text)))
    return decoded


def rendered_manifest(chart: Chart, objects: list[Obj]) -> str:
    """The release ``manifest``: each object as the chart rendered it, under its ``# Source:`` line."""
    parts = []
    for obj in objects:
        clean = {k: v for k, v in obj.items() if k != "status"}
        clean["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in _STRIP}
        clean["metadata"].get("annotations", {}).pop("meta.helm.sh/release-name", None)
        clean["metadata"].get("annotations", {}).pop("meta.helm.sh/release-namespace", None)
        if not clean["metadata"].get("annotations", True):
            clean["metadata"].pop("annotations")
        source = f"{chart.name}/templates/{obj['kind'].lower()}.yaml"
        parts.append(f"---\n# Source: {source}\n{dump(clean)}")
    return "".join(parts)


def _release(chart: Chart, name: str, namespace: str, revisions: list[Revision], n: int, manifest: str) -> Obj:
    rev = revisions[n - 1]
    latest = n == len(revisions)
    chart_meta = {
        "name": chart.name,
        "home": chart.home,
        "version": chart.version,
        "description": chart.description,
        "apiVersion": "v2",
        "appVersion": chart.app_version,
        "type": "application",
    }
    templates = [{"name": f"templates/{k}", "data": b64(v)} for k, v in chart.templates.items()]
    return {
        "name": name,
        "info": {
            "first_deployed": revisions[0].time.replace("Z", ".482135771Z"),
            "last_deployed": rev.time.replace("Z", ".482135771Z"),
            "deleted": "",
            "description": "Install complete" if n == 1 else "Upgrade complete",
            "status": "deployed" if latest else "superseded",
        },
        "chart": {
            "metadata": chart_meta,
            "lock": None,
            "templates": templates,
            "values": chart.default_values,
            "schema": None,
            "files": [],
        },
        "config": rev.values,
        "manifest": manifest,
        "version": n,
        "namespace": namespace,
    }


def release_secrets(
    c: Cluster, chart: Chart, name: str, namespace: str, revisions: list[Revision], objects: list[Obj]
) -> list[Obj]:
    """Create one release Secret per revision of ``name`` (the last one ``deployed``)."""
    manifest = rendered_manifest(chart, [c.submitted.get(o["metadata"]["uid"], o) for o in objects])
    secrets = []
    for n in range(1, len(revisions) + 1):
        latest = n == len(revisions)
        created = revisions[n - 1].time
        labels = {
            "modifiedAt": str(epoch(created)),
            "name": name,
            "owner": "helm",
            "status": "deployed",
            "version": str(n),
        }
        release = _release(chart, name, namespace, revisions[: n + 1], n, manifest)
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "helm.sh/release.v1",
            "metadata": {"name": f"sh.helm.release.v1.{name}.v{n}", "namespace": namespace, "labels": labels},
            "data": {"release": b64(encode_release(release))},
        }
        writes: tuple[Write, ...] = ()
        if not latest:
            superseded_at = revisions[n].time
            writes = (
                Write(
                    "helm",
                    superseded_at,
                    {"metadata": {"labels": {"modifiedAt": str(epoch(superseded_at)), "status": "superseded"}}},
                ),
            )
        secrets.append(applied(c, body, created, manager="helm", writes=writes))
    return secrets
