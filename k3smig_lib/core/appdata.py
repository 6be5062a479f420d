"""Application proofs that need only a manifest and a few small files fetched from the volume.

The data phase proves volumes equal file by file; these checks say whether the *applications* will
find what they need, on each side, from the same inputs whatever the backend: the volume's manifest
(built in a helper pod, from an archive or from a folder) and the handful of files fetched into a
private folder (databases, block metadata). Nothing here reads a whole volume.

- SQLite databases are found by name (``*.db``, ``*.sqlite``, ``*.sqlite3``, ``*.db3``) and fetched with
  their ``-wal``; :mod:`k3smig_lib.core.appchecks_sqlite` checks integrity and counts rows.
- Vaultwarden: ``rsa_key*`` present (without them every session is invalidated); every attachment row
  has its file *of the recorded size*; every file Send has its file; orphans are warnings.
- Prometheus: TSDB blocks from their ``meta.json`` (ULID, min/max time, series), equal on both sides.
- Grafana: the ``secret_key`` that encrypts datasource passwords travelled with the Secrets.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from k3smig_lib.core.appchecks_sqlite import open_readonly
from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.objects import Obj, get_path, pod_spec, ref

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")
SIDECARS = ("-wal",)
RSA_KEYS = ("rsa_key.pem", "rsa_key.der", "rsa_key.pub.der", "rsa_key.pub.pem")
_ULID_META = re.compile(r"^(?:.*/)?([0-9A-HJKMNP-TV-Z]{26})/meta\.json$")


def database_paths(manifest: Manifest) -> list[str]:
    """Regular files that look like SQLite databases by name, with their ``-wal`` when present.

    Examples:
        >>> from k3smig_lib.core.manifest import Entry
        >>> e = lambda p: Entry(p, "f", 4096, 0o644, 0, 0, "", "x", 0)
        >>> database_paths(Manifest({p: e(p) for p in ("grafana.db", "grafana.db-wal", "a.txt")}, "t"))
        ['grafana.db', 'grafana.db-wal']
    """
    entries = manifest.entries
    dbs = [p for p, e in entries.items() if e.type in ("f", "h") and p.endswith(SQLITE_SUFFIXES) and e.size >= 512]
    out = []
    for db in sorted(dbs):
        out.append(db)
        out += [db + s for s in SIDECARS if db + s in entries]
    return out


def databases(paths: Iterable[str]) -> list[str]:
    """The database files among fetched paths (sidecars left out)."""
    return [p for p in paths if p.endswith(SQLITE_SUFFIXES)]


@dataclass(frozen=True)
class Block:
    """One Prometheus TSDB block, from its ``meta.json``."""

    ulid: str
    min_time: int
    max_time: int
    series: int
    samples: int


def block_meta_paths(manifest: Manifest) -> list[str]:
    """``<ULID>/meta.json`` files of TSDB blocks."""
    return sorted(p for p, e in manifest.entries.items() if e.type == "f" and _ULID_META.match(p))


def prometheus_blocks(folder: Path, paths: Sequence[str]) -> list[Block]:
    """Blocks described by the fetched ``meta.json`` files (unreadable ones are skipped and show as missing)."""
    blocks = []
    for rel in paths:
        found = _ULID_META.match(rel)
        try:
            meta = json.loads((folder / rel).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        stats = meta.get("stats") or {}
        blocks.append(Block(ulid=str(meta.get("ulid") or (found.group(1) if found else "")),
                            min_time=int(meta.get("minTime") or 0), max_time=int(meta.get("maxTime") or 0),
                            series=int(stats.get("numSeries") or 0), samples=int(stats.get("numSamples") or 0)))
    return sorted(blocks, key=lambda b: b.ulid)


@dataclass
class VaultFiles:
    """Vaultwarden's files against its database.

    Attributes:
        keys: which ``rsa_key*`` files exist.
        attachments: rows in ``attachments``.
        missing: attachment rows without a file, or with a file of another size (``path (size a != b)``).
        orphans: files under ``attachments/`` that no row references.
        sends: file Sends in the database (``None``: this Vaultwarden has no ``sends`` table).
        sends_missing: file Sends without their file.
    """

    keys: list[str]
    attachments: int
    missing: list[str]
    orphans: list[str]
    sends: int | None = None
    sends_missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Keys present and every referenced file there with its size."""
        return bool(self.keys) and not self.missing and not self.sends_missing

    def describe(self) -> str:
        """One line for a report."""
        sends = "no sends table" if self.sends is None else \
            f"{self.sends} file sends, {len(self.sends_missing)} missing"
        text = (f"rsa keys: {', '.join(self.keys) or 'NONE'}; {self.attachments} attachments, {len(self.missing)} "
                f"missing or wrong size, {len(self.orphans)} orphans; {sends}")
        if self.missing:
            text += f"; e.g. {self.missing[0]}"
        return text


def _sizes(manifest: Manifest, prefix: str) -> dict[str, int]:
    return {p[len(prefix):]: e.size for p, e in manifest.entries.items()
            if p.startswith(prefix) and e.type in ("f", "h")}


def _rows(con: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]] | None:
    try:
        return list(con.execute(sql))
    except sqlite3.DatabaseError:
        return None


def vaultwarden_files(db: Path, manifest: Manifest) -> VaultFiles:
    """Check Vaultwarden's keys, attachments and Sends against its database (``db`` is a fetched copy)."""
    files = _sizes(manifest, "attachments/")
    with open_readonly(db) as con:
        rows = _rows(con, "SELECT cipher_uuid, id, file_size FROM attachments") or []
        sends = _rows(con, "SELECT uuid, atype, data FROM sends")
    missing = []
    for cipher, ident, size in rows:
        key = f"{cipher}/{ident}"
        if key not in files:
            missing.append(f"attachments/{key} (no file)")
        elif int(size) != files[key]:
            missing.append(f"attachments/{key} (size {files[key]} != {int(size)} recorded)")
    referenced = {f"{c}/{i}" for c, i, _ in rows}
    send_files = _sizes(manifest, "sends/")
    sends_missing = []
    file_sends = 0
    for uuid, atype, data in sends or []:
        if int(atype or 0) != 1:
            continue
        file_sends += 1
        try:
            ident = str(json.loads(data or "{}").get("id") or "")
        except ValueError:
            ident = ""
        if not ident or f"{uuid}/{ident}" not in send_files:
            sends_missing.append(f"sends/{uuid}/{ident or '?'}")
    keys = sorted(k for k in RSA_KEYS if k in manifest.entries)
    return VaultFiles(keys=keys, attachments=len(rows), missing=sorted(missing),
                      orphans=sorted(set(files) - referenced), sends=None if sends is None else file_sends,
                      sends_missing=sorted(sends_missing))


@dataclass(frozen=True)
class SecretKeyCheck:
    """Where Grafana's ``secret_key`` comes from and whether it reached the target."""

    workload: str
    source: str
    travelled: bool | None  # None: Grafana's built-in default key (nothing to carry)

    def describe(self) -> str:
        """One line for a report."""
        if self.travelled is None:
            return (f"{self.workload}: no secret_key set ({self.source}); the built-in default decrypts on the "
                    "target too")
        return f"{self.workload}: secret_key from {self.source}: " + ("on the target" if self.travelled
                                                                       else "NOT on the target")


def _grafana_workloads(objects: Sequence[Obj], namespace: str, claim: str) -> list[Obj]:
    out = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None or ref(obj).namespace != namespace or obj.get("kind") in ("Pod", "ReplicaSet", "Job"):
            continue
        images = " ".join(str(c.get("image", "")) for c in spec.get("containers") or [])
        claims = [get_path(v, "persistentVolumeClaim.claimName") for v in spec.get("volumes") or []]
        if "grafana" in images and claim in claims:
            out.append(obj)
    return out


def grafana_secret_key(objects: Sequence[Obj], target_objects: Sequence[Obj], namespace: str,
                       claim: str) -> list[SecretKeyCheck]:
    """Find the ``secret_key`` of each Grafana that mounts ``claim`` and say whether its source is on the target.

    Looks at ``GF_SECURITY_SECRET_KEY`` (a ``secretKeyRef`` must name a Secret present on the target; an
    inline value travels with the Deployment) and at mounted ``grafana.ini`` files from ConfigMaps or
    Secrets (``[security] secret_key``).
    """
    present = {(ref(o).kind, ref(o).namespace, ref(o).name) for o in target_objects}
    by_name = {(ref(o).kind, ref(o).name): o for o in objects if ref(o).namespace == namespace}
    checks = []
    for wl in _grafana_workloads(objects, namespace, claim):
        spec = pod_spec(wl) or {}
        found: SecretKeyCheck | None = None
        for c in spec.get("containers") or []:
            for env in c.get("env") or []:
                if env.get("name") != "GF_SECURITY_SECRET_KEY":
                    continue
                sref = get_path(env, "valueFrom.secretKeyRef") or {}
                if sref:
                    name = str(sref.get("name"))
                    found = SecretKeyCheck(ref(wl).id, f"Secret {name} key {sref.get('key')}",
                                           ("Secret", namespace, name) in present)
                else:
                    found = SecretKeyCheck(ref(wl).id, "an inline GF_SECURITY_SECRET_KEY value", True)
        for vol in spec.get("volumes") or []:
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                name = str((vol.get(key) or {}).get("name" if kind == "ConfigMap" else "secretName") or "")
                src = by_name.get((kind, name))
                data = (src or {}).get("data") or (src or {}).get("stringData") or {}
                ini = str(data.get("grafana.ini", ""))
                if src is not None and kind == "ConfigMap" and re.search(r"(?m)^\s*secret_key\s*=", ini):
                    found = SecretKeyCheck(ref(wl).id, f"grafana.ini in ConfigMap {name}",
                                           ("ConfigMap", namespace, name) in present)
                elif src is not None and kind == "Secret" and "grafana.ini" in data:
                    found = SecretKeyCheck(ref(wl).id, f"grafana.ini in Secret {name}",
                                           ("Secret", namespace, name) in present)
        checks.append(found or SecretKeyCheck(ref(wl).id, "neither GF_SECURITY_SECRET_KEY nor grafana.ini", None))
    return checks


__all__ = ["Block", "SecretKeyCheck", "VaultFiles", "block_meta_paths", "database_paths", "databases",
           "grafana_secret_key", "prometheus_blocks", "vaultwarden_files"]
