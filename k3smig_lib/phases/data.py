"""Phase 70 · migrate volume data and prove nothing was lost.

Per volume: source manifest from the archive stream (hashed, never trusted), an ownership plan derived
from the *target* pod spec, a fail-closed extraction into a fresh target folder, a manifest re-read from
disk, an exact comparison, and application checks (SQLite, Grafana dashboards, Vaultwarden attachments,
Prometheus configuration). Held workloads are released only when all of their volumes are proven.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from k3smig_lib.backends.base import VolumeRef
from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.appchecks import (
    compare_sqlite,
    grafana_dashboards,
    prometheus_check,
    sqlite_check,
    vaultwarden_attachments,
)
from k3smig_lib.core.config import Settings
from k3smig_lib.core.manifest import Manifest, compare, manifest_from_dir, manifest_from_tar
from k3smig_lib.core.objects import Obj, pod_spec, ref
from k3smig_lib.core.ownership import OwnershipPlan, apply_ownership, plan_ownership
from k3smig_lib.core.tarsafe import safe_extract
from k3smig_lib.phases._base import PhaseRun
from k3smig_lib.phases._context import open_source, open_target
from k3smig_lib.phases.deploy import VERIFIED, desired_objects, mounts_claims, release
from k3smig_lib.show import progress

PHASE = "70_migrate_data"
SQLITE_MAGIC = b"SQLite format 3\x00"


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def consumer_spec(objects: list[Obj], volume: VolumeRef) -> Obj | None:
    """Pod spec of the target workload that mounts ``volume`` (its owners decide the target owners)."""
    for obj in objects:
        if ref(obj).namespace != volume.namespace:
            continue
        spec = pod_spec(obj)
        if spec is None:
            continue
        claims = [(v.get("persistentVolumeClaim") or {}).get("claimName") for v in spec.get("volumes") or []]
        if volume.claim in claims:
            return spec
        for tpl in (obj.get("spec") or {}).get("volumeClaimTemplates") or []:
            name = tpl["metadata"]["name"]
            if volume.claim.startswith(f"{name}-{ref(obj).name}-"):
                # the StatefulSet controller adds this volume to each pod: do the same for the plan
                volumes = [v for v in spec.get("volumes") or [] if v.get("name") != name]
                added = {"name": name, "persistentVolumeClaim": {"claimName": volume.claim}}
                return {**spec, "volumes": [*volumes, added]}
    return None


@contextmanager
def _source_copy(source: SnapshotSource, volume: VolumeRef) -> Iterator[Path]:
    """Extract the source volume into a private temp folder (for application checks of the source side)."""
    tmp = Path(tempfile.mkdtemp(prefix="k3smig-src-"))
    try:
        safe_extract(source.archive_path(volume), tmp / "v")
        yield tmp / "v"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class Data(PhaseRun):
    """State of the data notebook."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        source = open_source(cfg)
        self.target = open_target(cfg)
        self.objects, _ = desired_objects(cfg, self.target)
        self.plans: dict[str, OwnershipPlan] = {}
        self.source_manifests: dict[str, Manifest] = {}
        self.verified: set[str] = set()
        self.volumes: list[VolumeRef] = []
        # live volumes (helper pods, tar over pods/exec) arrive with the live data path
        live = not isinstance(source, SnapshotSource) or cfg.target_kind != "directory"
        self.unavailable = "live volumes move with the live data path (a later release); " \
            "workloads that mount them stay at 0 replicas" if live else ""
        if self.unavailable:
            self.summary["data"] = "not migrated: " + self.unavailable
            return
        assert isinstance(source, SnapshotSource)
        self.source: SnapshotSource = source
        self.volumes = source.list_volumes()

    def _not_here(self) -> pd.DataFrame | None:
        return pd.DataFrame([{"data path": "not run: " + self.unavailable}]) if self.unavailable else None

    def volume_table(self) -> pd.DataFrame:
        """Volumes to move, with their class and size on the source."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = [{"volume": v.id, "storageClass": v.storage_class, "size": v.size,
                 "accessModes": ", ".join(v.access_modes), "target folder": str(self.target.volume_root(v))}
                for v in self.volumes]
        self.summary["volumes"] = len(rows)
        return self.save_table("volumes", pd.DataFrame(rows))

    def source_manifests_table(self) -> pd.DataFrame:
        """Hash every member of every source archive (streaming; nothing written)."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = []
        for v in progress(self.volumes, desc="hashing source volumes"):
            with self.source.open_volume(v) as stream:
                m = manifest_from_tar(stream)
            self.source_manifests[v.id] = m
            self.save_text(f"manifests/{v.namespace}__{v.claim}.source.json", m.to_json())
            rows.append({"volume": v.id, **m.totals, "root_hash": m.root_hash[:20]})
        return self.save_table("source_manifests", pd.DataFrame(rows))

    def ownership(self) -> pd.DataFrame:
        """Ownership plan per volume: owners seen, the target pod's identity, the resulting action."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = []
        for v in self.volumes:
            plan = plan_ownership(v.id, self.source_manifests[v.id], consumer_spec(self.objects, v))
            self.plans[v.id] = plan
            seen = "; ".join(f"{h['uid']}:{h['gid']} ({h['files']} files, {h['dirs']} dirs)" for h in plan.histogram)
            rows.append({"volume": v.id, "owners on source": seen,
                         "target uid": "" if plan.target_uid is None else str(plan.target_uid),
                         "target gid": "" if plan.target_gid is None else str(plan.target_gid),
                         "from": plan.source, "action": plan.action,
                         "note": plan.note})
        return self.save_table("ownership_plan", pd.DataFrame(rows))

    def source_checks(self) -> pd.DataFrame:
        """SQLite integrity of the source databases — a corrupt source stops the phase before any write."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = []
        for v in self.volumes:
            with _source_copy(self.source, v) as root:
                for db in sorted(p for p in root.rglob("*") if p.is_file() and _is_sqlite(p)):
                    rep = sqlite_check(db)
                    rows.append({"volume": v.id, "database": str(db.relative_to(root)), "integrity": rep.integrity,
                                 "tables": len(rep.tables), "rows": sum(rep.tables.values())})
                    if not rep.ok:
                        self.errors.append(f"{v.id}: {db.name} fails integrity_check on the source")
        return self.save_table("source_sqlite", pd.DataFrame(rows))

    def transfer(self) -> pd.DataFrame:
        """Restore each volume into its target folder (fresh, fail closed); skip volumes already equal."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = []
        if self.errors:
            return pd.DataFrame([{"result": "not run: the source checks failed"}])
        for v in progress(self.volumes, desc="restoring volumes"):
            rows.append(self._transfer_one(v))
        return self.save_table("transfer", pd.DataFrame(rows))

    def _transfer_one(self, v: VolumeRef) -> dict[str, Any]:
        root, plan = self.target.volume_root(v), self.plans[v.id]
        if not self.cfg.apply:
            return {"volume": v.id, "action": "planned", "detail": f"would extract into {root}"}
        if root.exists():
            diff = compare(self.source_manifests[v.id], manifest_from_dir(root), remap=plan)
            if diff.equal:
                return {"volume": v.id, "action": "unchanged", "detail": "target already equal (not re-copied)"}
            self.errors.append(f"{v.id}: target folder {root} holds other data ({diff.summary()})")
            return {"volume": v.id, "action": "refused", "detail": "stale target: remove the folder and re-run"}
        root.parent.mkdir(parents=True, exist_ok=True)
        report = safe_extract(self.source.archive_path(v), root)
        changed = apply_ownership(root, plan) if plan.action == "chown" and os.geteuid() == 0 else 0
        return {"volume": v.id, "action": "restored", "detail": f"{report.members} members, {report.bytes} bytes,"
                f" owners {'applied' if report.owners_applied else 'not applied (not root)'}, {changed} chowned"}

    def verify(self) -> pd.DataFrame:
        """Re-read every target folder and compare it with the source manifest, entry by entry."""
        if (skip := self._not_here()) is not None:
            return skip
        rows = []
        if not self.cfg.apply:
            return pd.DataFrame([{"result": "dry run: nothing to compare"}])
        as_root = os.geteuid() == 0
        for v in self.volumes:
            root = self.target.volume_root(v)
            if not root.exists():
                rows.append({"volume": v.id, "equal": False, "detail": "target folder missing"})
                continue
            target = manifest_from_dir(root)
            self.save_text(f"manifests/{v.namespace}__{v.claim}.target.json", target.to_json())
            diff = compare(self.source_manifests[v.id], target, remap=self.plans[v.id])
            changed = diff.changed if as_root else [(p, f) for p, f in diff.changed if set(f) - {"uid", "gid"}]
            equal = not diff.missing and not diff.extra and not changed
            if equal:
                self.verified.add(v.id)
            else:
                self.errors.append(f"{v.id}: manifests differ ({diff.summary()})")
            rows.append({"volume": v.id, "equal": equal, "entries": len(target.entries),
                         "missing": len(diff.missing), "extra": len(diff.extra), "changed": len(changed),
                         "source root hash": self.source_manifests[v.id].root_hash[:20],
                         "target root hash": target.root_hash[:20]})
        if not as_root:
            self.warnings.append("not root: owners were not applied, uid/gid left out of the comparison")
        self.summary["volumes verified"] = len(self.verified)
        return self.save_table("manifest_compare", pd.DataFrame(rows))

    def app_checks(self) -> pd.DataFrame:
        """Application proofs on both sides: SQLite integrity and row counts, dashboards, attachments."""
        if (skip := self._not_here()) is not None:
            return skip
        rows: list[dict[str, Any]] = []
        if not self.cfg.apply:
            return pd.DataFrame([{"result": "dry run: no target data to check"}])
        if self.errors:
            return pd.DataFrame([{"result": "not run: the volumes above are not proven equal"}])
        for v in self.volumes:
            with _source_copy(self.source, v) as src:
                rows += self._sqlite_rows(v, src, self.target.volume_root(v))
                rows += self._app_rows(v, src, self.target.volume_root(v))
        rows += self._prometheus_rows()
        for row in rows:
            if row["result"] == "FAIL":
                self.errors.append(f"{row['volume']}: {row['check']} {row['detail']}")
        return self.save_table("app_checks", pd.DataFrame(rows))

    def _sqlite_rows(self, v: VolumeRef, src: Path, dst: Path) -> list[dict[str, Any]]:
        rows = []
        for db in sorted(p for p in src.rglob("*") if p.is_file() and _is_sqlite(p)):
            rel = db.relative_to(src)
            if not (dst / rel).is_file():
                rows.append({"volume": v.id, "check": f"sqlite {rel}", "result": "FAIL", "detail": "missing on target"})
                continue
            a, b = sqlite_check(db), sqlite_check(dst / rel)
            diffs = compare_sqlite(a, b)
            rows.append({"volume": v.id, "check": f"sqlite {rel}", "result": "PASS" if b.ok and not diffs else "FAIL",
                         "detail": f"integrity {b.integrity}; {len(b.tables)} tables, {sum(b.tables.values())} rows"
                         + (f"; differs: {', '.join(diffs[:3])}" if diffs else "; row counts equal")})
        return rows

    def _app_rows(self, v: VolumeRef, src: Path, dst: Path) -> list[dict[str, Any]]:
        rows = []
        if (src / "grafana.db").is_file():
            a, b = grafana_dashboards(src / "grafana.db"), grafana_dashboards(dst / "grafana.db")
            same = [(d.uid, d.version) for d in a] == [(d.uid, d.version) for d in b]
            self.save_table(f"grafana_dashboards_{v.claim}", pd.DataFrame([vars(d) for d in b]))
            rows.append({"volume": v.id, "check": "grafana dashboards", "result": "PASS" if same else "FAIL",
                         "detail": f"{len(b)} dashboards; uid/version {'equal' if same else 'differ'}"})
        if (src / "db.sqlite3").is_file() and (src / "attachments").exists():
            rep = vaultwarden_attachments(dst)
            ok = not rep.missing
            rows.append({"volume": v.id, "check": "vaultwarden attachments", "result": "PASS" if ok else "FAIL",
                         "detail": f"{rep.referenced} referenced, {rep.present} present, {len(rep.missing)} missing, "
                         f"{len(rep.orphans)} orphans"})
        return rows

    def _prometheus_rows(self) -> list[dict[str, Any]]:
        rows = []
        for obj in self.objects:
            data = obj.get("data") or {}
            if obj.get("kind") != "ConfigMap" or "prometheus.yml" not in data:
                continue
            folder = f"prometheus/{ref(obj).namespace}__{ref(obj).name}"
            for key, text in sorted(data.items()):  # rule files sit next to the config, as when mounted
                path = self.save_text(f"{folder}/{key}", str(text))
            check = prometheus_check(path.parent / "prometheus.yml")
            fail = not check.ok or (self.cfg.require_promtool and check.tool != "promtool")
            rows.append({"volume": ref(obj).id, "check": f"prometheus config ({check.tool})",
                         "result": "FAIL" if fail else "PASS", "detail": (check.note or check.output)[:200]})
        return rows

    def release(self) -> pd.DataFrame:
        """Scale held workloads back up once every volume they mount is verified."""
        if (skip := self._not_here()) is not None:
            return skip
        rows, releasing = [], []
        for obj in self.objects:
            claims = mounts_claims(obj)
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            if not claims or "k3smig.io/intended-replicas" not in ann or ann.get(VERIFIED):
                continue
            ns = ref(obj).namespace
            ok = all(any(vid.startswith(f"{ns}/{c}") for vid in self.verified) for c in claims)
            rows.append({"workload": ref(obj).id, "released": ok and self.cfg.apply and not self.errors})
            if ok:
                releasing.append(release(obj))
        if self.cfg.apply and releasing and not self.errors:
            self.target.apply(releasing, dry_run=False, existing="update")
        return self.save_table("released", pd.DataFrame(rows))


def start(cfg: Settings) -> Data:
    """List the volumes and open the target (phase 70)."""
    return Data(cfg)
