"""Phase 70 · migrate volume data and prove nothing was lost.

One code path for every backend pair (snapshot archives or a live cluster as source; a folder tree or
a live K3s cluster as target), through the volume port of :mod:`k3smig_lib.backends.base`:

1. the source manifest of every volume, hashed in place (in a helper pod, or from the archive);
2. the ownership plan, from the *target* pod spec; who writes the target volume and why;
3. capacity: bytes per volume against the target claim and the free space, refused before any write;
4. live sources: a first pass while the application runs, then the workloads that mount the volume are
   scaled to 0 on the source (replicas recorded on the objects) and their pods waited out;
5. the source databases checked (a corrupt source stops here), then the final pass: only what changed;
6. the proof: the target re-read from its own disk and compared entry by entry, the source re-hashed;
7. application checks on both sides (SQLite, Grafana, Vaultwarden, Prometheus), then release: a held
   workload goes back to its replicas only when every volume it mounts is proven.

Each step asks for the one before it (done once, see :func:`~k3smig_lib.phases._base.step`): a cell run
out of order does the earlier steps first, never copies before the capacity and source checks, never
takes the final manifest before the quiesce, never releases before the proof.

Helper pods live for the phase and are deleted in every outcome (``finish``, or at kernel exit); the
next run sweeps any a killed run left behind.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from k3smig_lib.backends.base import Capacity, SourceVolume, TargetVolume, VolumeRef
from k3smig_lib.core.appchecks import grafana_dashboards
from k3smig_lib.core.appchecks_sqlite import compare_sqlite, sqlite_check
from k3smig_lib.core.appdata import (
    block_meta_paths,
    database_paths,
    databases,
    grafana_secret_key,
    prometheus_blocks,
    vaultwarden_files,
)
from k3smig_lib.core.config import Settings
from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.objects import PRE_QUIESCE, Obj, get_path, pod_spec, ref
from k3smig_lib.core.ownership import OwnershipPlan, plan_ownership
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases._charts import bar_figure
from k3smig_lib.phases._datapath import PassRecord, Proof, copy_pass, prove
from k3smig_lib.phases.catalog import ReportStatus
from k3smig_lib.phases.context import open_source, open_target
from k3smig_lib.phases.deploy import HELD_UNTIL, INTENDED, VERIFIED, desired_objects, is_singleton, release
from k3smig_lib.show import figure, progress
from k3smig_lib.tools.promtool import prometheus_check

PHASE = "70_migrate_data"
#: Column of the tables that links each volume to its per-file checksums (the manifest JSON of one side).
CHECKSUMS = "per-file checksums"
LOKI_IMAGES = ("grafana/loki",)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
            if volume.claim in statefulset_claims(obj, name, _ordinals(volume.claim)):
                # the StatefulSet controller adds this volume to each pod: do the same for the plan
                volumes = [v for v in spec.get("volumes") or [] if v.get("name") != name]
                added = {"name": name, "persistentVolumeClaim": {"claimName": volume.claim}}
                return {**spec, "volumes": [*volumes, added]}
    return None


def _ordinals(claim: str) -> int:
    tail = claim.rsplit("-", 1)[-1]
    return int(tail) + 1 if tail.isdigit() else 0


def statefulset_claims(obj: Obj, template: str, replicas: int) -> list[str]:
    """Claims a StatefulSet's pods use for ``template``: ``<template>-<name>-<ordinal>``, one per replica.

    Examples:
        >>> statefulset_claims({"metadata": {"name": "loki"}}, "storage", 2)
        ['storage-loki-0', 'storage-loki-1']
    """
    return [f"{template}-{ref(obj).name}-{i}" for i in range(replicas)]


def required_claims(obj: Obj) -> list[str]:
    """Every claim a held workload needs proven before release: all replicas' claims of a StatefulSet.

    Examples:
        >>> sts = {"kind": "StatefulSet", "metadata": {"name": "db", "annotations": {INTENDED: "2"}},
        ...        "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"}}], "template": {"spec": {}}}}
        >>> required_claims(sts)
        ['data-db-0', 'data-db-1']
    """
    spec = pod_spec(obj) or {}
    claims = [str(v["persistentVolumeClaim"]["claimName"]) for v in spec.get("volumes") or []
              if isinstance(v, dict) and "persistentVolumeClaim" in v]
    intended = int(((obj.get("metadata") or {}).get("annotations") or {}).get(INTENDED, "1"))
    for tpl in get_path(obj, "spec.volumeClaimTemplates", []) or []:
        claims += statefulset_claims(obj, str(tpl["metadata"]["name"]), intended)
    return claims


def is_loki(objects: list[Obj], volume: VolumeRef) -> bool:
    """The volume belongs to a Loki workload (by image)."""
    spec = consumer_spec(objects, volume) or {}
    return any(any(i in str(c.get("image", "")) for i in LOKI_IMAGES) for c in spec.get("containers") or [])


def target_user(plan: OwnershipPlan, manifest: Manifest) -> tuple[tuple[int, int] | None, str]:
    """Who writes the target volume: its single non-root owner when nothing needs a chown, else root.

    Examples:
        >>> from k3smig_lib.core.manifest import Entry
        >>> m = Manifest({".": Entry(".", "d", 0, 0o755, 472, 472, "", "", 0)}, "s")
        >>> target_user(plan_ownership("g", m, None), m)[0]
        (472, 472)
    """
    owners = {plan.expected(e.uid, e.gid) for e in manifest.entries.values()}
    if plan.action == "chown":
        return None, f"root: the plan changes owners ({plan.note})"
    if len(owners) == 1:
        uid, gid = owners.pop()
        if uid != 0:
            return (uid, gid), f"{uid}:{gid}, the only owner in the volume: no chown needed, so no root"
        return None, "root: the volume's files belong to root"
    return None, f"root: the volume holds {len(owners)} different owners, kept as they are"


def capacity_problem(volume_id: str, need: int, cap: Capacity, margin: float = 0.1) -> str:
    """Why ``need`` bytes do not fit the target volume ("" when they do).

    The claim's request is a size the application asked for, not a quota local-path enforces, so it is
    allowed ``margin`` more (``volume_size_margin``, the same bound archives are held to); free space is
    a hard limit.

    Examples:
        >>> capacity_problem("ns/db", 2048, Capacity(requested=1024, free=None))[:36]
        'ns/db: the volume holds 2048 bytes ('
        >>> capacity_problem("ns/db", 1100, Capacity(requested=1024, free=None))
        ''
    """
    if cap.requested is not None and need > cap.requested * (1 + margin):
        return (f"{volume_id}: the volume holds {need} bytes (sparse files counted at their apparent size) but the "
                f"target claim requests {cap.requested} (+{margin:.0%} margin): refused before any write (raise the "
                "claim's spec.resources.requests.storage, or volume_size_margin)")
    if cap.free is not None and need > cap.free:
        return (f"{volume_id}: the volume holds {need} bytes but only {cap.free} are free where the target volume "
                "lives: refused before any write (grow the disk, disk_gb)")
    return ""


class Data(PhaseRun):
    """State of the data notebook: the volume sessions (helper pods) live until :meth:`finish`."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.source = open_source(cfg)
        self.target = open_target(cfg)
        self.objects, _ = desired_objects(cfg, self.target)
        self.live_source = cfg.source_kind == "cluster"
        self.live = self.live_source or cfg.target_kind == "cluster"
        self.plans: dict[str, OwnershipPlan] = {}
        self.users: dict[str, tuple[tuple[int, int] | None, str]] = {}
        self.first: dict[str, Manifest] = {}
        self.final: dict[str, Manifest] = {}
        self.proofs: dict[str, Proof] = {}
        self.verified: set[str] = set()
        self.skipped: dict[str, str] = {}
        self.quiesced_at: dict[str, str] = {}
        self.passes: list[PassRecord] = []
        self._src: dict[str, SourceVolume] = {}
        self._dst: dict[str, TargetVolume] = {}
        self._dst_stacks: dict[str, ExitStack] = {}
        self._stack = ExitStack()
        atexit.register(self.close)
        self.volumes: list[VolumeRef] = []
        for v in self.source.list_volumes():
            if not cfg.include_loki and is_loki(self.objects, v):
                self.skipped[v.id] = "include_loki: false: Loki's logs are not moved; it starts empty on the target"
            else:
                self.volumes.append(v)
        self.summary["volumes"] = len(self.volumes)
        if self.live and cfg.apply:
            self._sweep()

    # --- sessions ------------------------------------------------------------------------------

    def _sweep(self) -> None:
        for side in (self.source, self.target):
            sweep = getattr(side, "sweep_helpers", None)
            if sweep is not None:
                gone = sweep(keep_run=self.cfg.run_path().name)
                if gone:
                    self.warnings.append(f"removed {len(gone)} helper pod(s) left by an earlier run: {', '.join(gone)}")

    @property
    def can_read(self) -> bool:
        """Reading a live volume starts a helper pod: a write, so only with ``apply: true``."""
        return self.cfg.apply or not self.live_source

    def _source(self, v: VolumeRef) -> SourceVolume:
        if v.id not in self._src:
            self._src[v.id] = self._stack.enter_context(self.source.volume(v))
        return self._src[v.id]

    def _target(self, v: VolumeRef) -> TargetVolume:
        self._plan(v)  # the plan decides who writes the target volume
        user = self.users.get(v.id, (None, ""))[0]
        if v.id not in self._dst:
            stack = ExitStack()
            self._dst[v.id] = stack.enter_context(self.target.volume(v, user=user))
            self._dst_stacks[v.id] = stack
            current = self._dst[v.id].manifest() if user is not None else None
            if current is not None and current.entries["."].uid != user[0]:  # type: ignore[index]
                # a new volume's root folder belongs to root; setting its owner needs a root writer
                stack.close()
                del self._dst[v.id], self._dst_stacks[v.id]
                self.users[v.id] = (None, f"root: the target volume's root folder belongs to "
                                    f"{current.entries['.'].uid}:{current.entries['.'].gid} and must change")
                return self._target(v)
        return self._dst[v.id]

    def close(self) -> None:
        """Close every volume session (helper pods are deleted); safe to call twice."""
        for stack in self._dst_stacks.values():
            stack.close()
        self._dst_stacks.clear()
        self._dst.clear()
        self._stack.close()
        self._src.clear()

    def _not_read(self) -> pd.DataFrame | None:
        if self.can_read:
            return None
        return pd.DataFrame([{"data": "NOT RUN: dry run: reading a live volume starts a helper pod (a write); "
                                      "set apply: true to read, copy and prove the volumes"}])

    # --- steps ---------------------------------------------------------------------------------

    def volume_table(self) -> pd.DataFrame:
        """Volumes to move, with their class and size on the source (and the ones left out, with why)."""
        rows = [{"volume": v.id, "storageClass": v.storage_class, "size": v.size,
                 "accessModes": ", ".join(v.access_modes), "moves": "yes"} for v in self.volumes]
        rows += [{"volume": vid, "storageClass": "", "size": "", "accessModes": "", "moves": f"no: {why}"}
                 for vid, why in sorted(self.skipped.items())]
        return self.save_table("volumes", pd.DataFrame(rows))

    @step
    def source_manifests_table(self) -> pd.DataFrame:
        """Hash every source volume in place: in a helper pod, or from its archive (nothing is copied)."""
        if (skip := self._not_read()) is not None:
            return skip
        rows = []
        for v in progress(self.volumes, desc="hashing source volumes"):
            sv, m = self._source(v), self._manifest(v)
            self.save_text(f"manifests/{v.namespace}__{v.claim}.source.json", m.to_json())
            rows.append({"volume": v.id, "read by": f"{sv.access.where} as {sv.access.user}", **m.totals,
                         "root_hash": m.root_hash[:20], CHECKSUMS: _checksums(v, "source")})
        return self.save_table("source_manifests", pd.DataFrame(rows), links={CHECKSUMS: "manifests"},
                               sizes=("bytes",))

    def volume_chart(self) -> Any:
        """Bytes per volume as hashed on the source (sparse files at their apparent size)."""
        self.source_manifests_table()  # the manifests it draws
        if not self.first:
            return pd.DataFrame([{"chart": "NOT RUN: no source volume was read (see the table above)"}])
        sizes = [int(m.totals["bytes"]) for m in self.first.values()]
        unit, scale = next((u, f) for u, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10), ("bytes", 1))
                           if max(sizes, default=0) >= f or f == 1)
        return figure(bar_figure(list(self.first), [round(n / scale, 1) for n in sizes],
                                 title="Volume sizes on the source (bytes hashed, sparse files at their apparent size)",
                                 xlabel=unit))

    def _manifest(self, v: VolumeRef) -> Manifest:
        if v.id not in self.first:
            self.first[v.id] = self._source(v).manifest()
        return self.first[v.id]

    @step
    def ownership(self) -> pd.DataFrame:
        """Ownership plan per volume, and who writes the target volume (root only when the plan needs it)."""
        if (skip := self._not_read()) is not None:
            return skip
        rows = []
        for v in self.volumes:
            manifest = self._manifest(v)
            plan = plan_ownership(v.id, manifest, consumer_spec(self.objects, v))
            self.plans[v.id] = plan
            self.users[v.id] = target_user(plan, manifest)
            seen = "; ".join(f"{h['uid']}:{h['gid']} ({h['files']} files, {h['dirs']} dirs)" for h in plan.histogram)
            rows.append({"volume": v.id, "owners on source": seen,
                         "target uid": "" if plan.target_uid is None else str(plan.target_uid),
                         "target gid": "" if plan.target_gid is None else str(plan.target_gid),
                         "from": plan.source, "action": plan.action, "note": plan.note,
                         "target writer": self.users[v.id][1]})
        return self.save_table("ownership_plan", pd.DataFrame(rows))

    def _plan(self, v: VolumeRef) -> OwnershipPlan:
        if v.id not in self.plans:
            self.ownership()
        return self.plans[v.id]

    @step
    def capacity(self) -> pd.DataFrame:
        """Bytes per volume (sparse files at their apparent size) against the target claim and free space."""
        if (skip := self._not_read()) is not None:
            return skip
        rows = []
        for v in self.volumes:
            self._plan(v)
            need = self._manifest(v).totals["bytes"]
            if not self.cfg.apply and self.cfg.target_kind == "cluster":
                rows.append({"volume": v.id, "bytes": need, "requested": v.size, "free": "",
                             "fits": "NOT RUN: dry run: the target's free space is read only with apply: true"})
                continue
            dst = self._target(v)
            cap = dst.capacity()
            fits = not capacity_problem(v.id, need, cap, self.cfg.volume_size_margin)
            rows.append({"volume": v.id, "bytes": need, "requested": cap.requested, "free": cap.free,
                         "writer": f"{dst.access.where} as {dst.access.user}", "fits": fits})
            problem = capacity_problem(v.id, need, cap, self.cfg.volume_size_margin)
            if problem:
                self.errors.append(problem)
        return self.save_table("capacity", pd.DataFrame(rows), sizes=("bytes", "requested", "free"))

    @step
    def first_pass(self) -> pd.DataFrame:
        """Live source, quiesce on: copy while the application runs, so the final pass has little to send."""
        self.capacity()  # refused before any write
        if not (self.live_source and self.cfg.quiesce):
            return pd.DataFrame([{"first pass": "not needed: " + ("an archive does not change" if not
                                  self.live_source else "quiesce: false (one copy while the application runs)")}])
        if not self.cfg.apply:
            return pd.DataFrame([{"first pass": "NOT RUN: dry run: nothing copied"}])
        if self.errors:
            return pd.DataFrame([{"first pass": "NOT RUN: the checks above failed"}])
        if not self._targets_ours():
            return pd.DataFrame([{"first pass": "NOT RUN: a target volume holds data k3smig did not write"}])
        rows = []
        for v in progress(self.volumes, desc="first pass"):
            rec = copy_pass(self._source(v), self._target(v), self._plan(v), name="pass 1 (application running)",
                            source=self._manifest(v), allow_changes=True)
            self.passes.append(rec)
            rows.append(rec.row())  # no checksum link: the source manifest file is rewritten by the final pass
        return self.save_table("first_pass", pd.DataFrame(rows), sizes=("bytes sent",))

    def _workloads(self) -> list[tuple[str, str, str]]:
        """Source Deployments/StatefulSets that mount a migrated claim."""
        claims = {v.id for v in self.volumes}
        out = []
        for obj in self.source.list_objects():
            kind = str(obj.get("kind"))
            if kind not in ("Deployment", "StatefulSet"):
                continue
            mounted = {f"{ref(obj).namespace}/{c}" for c in required_claims(_with_intended(obj))}
            if mounted & claims:
                out.append((kind, ref(obj).namespace, ref(obj).name))
        return sorted(out)

    @step
    def quiesce(self) -> pd.DataFrame:
        """Scale the source workloads that write the volumes to 0 (replicas recorded on them), pods waited out."""
        self.first_pass()  # while the applications still run
        if not self.live_source:
            return pd.DataFrame([{"quiesce": "not needed: the source is an export, not a running cluster"}])
        if not self.cfg.quiesce:
            self.warnings.append("quiesce: false: the volumes are copied while the applications run; the copy may "
                                 "be inconsistent, and any change during the copy fails the proof")
            return pd.DataFrame([{"quiesce": "off (quiesce: false): the copy may be inconsistent"}])
        if not self.cfg.apply or self.errors:
            return pd.DataFrame([{"quiesce": "NOT RUN: dry run: nothing scaled" if not self.cfg.apply else
                                  "NOT RUN: the checks above failed"}])
        done = self.source.quiesce(self._workloads())  # type: ignore[attr-defined]
        for q in done:
            self.quiesced_at[q.workload] = q.at
        self.summary["workloads quiesced"] = len(done)
        return self.save_table("quiesce", pd.DataFrame([
            {"workload": q.workload, "replicas before": q.replicas, "scaled to 0 at": q.at,
             "state": "already at 0 (earlier run)" if q.already else "scaled to 0 now"} for q in done]))

    @step
    def source_checks(self) -> pd.DataFrame:
        """SQLite integrity of the source databases (quiesced): a corrupt source stops before the final copy."""
        self.quiesce()  # the final manifest is read after the writers stopped
        if (skip := self._not_read()) is not None:
            return skip
        rows = []
        for v in self.volumes:
            with self._fetched(self._source(v), database_paths(self._final_manifest(v))) as (folder, found):
                for rel in databases(found):
                    rep = sqlite_check(folder / rel)
                    rows.append({"volume": v.id, "database": rel, "integrity": rep.integrity,
                                 "tables": len(rep.tables), "rows": sum(rep.tables.values())})
                    if not rep.ok:
                        self.errors.append(f"{v.id}: {rel} fails integrity_check on the source")
        return self.save_table("source_sqlite", pd.DataFrame(rows))

    def _final_manifest(self, v: VolumeRef) -> Manifest:
        """The source manifest the final pass copies and the proof compares against."""
        if v.id not in self.final:
            sv = self._source(v)
            self.final[v.id] = self._manifest(v) if sv.immutable else sv.manifest()  # a live one: read it again now
        return self.final[v.id]

    @step
    def transfer(self) -> pd.DataFrame:
        """The final pass: send what differs (everything the first time, nothing on a re-run)."""
        self.source_checks()  # with capacity, quiesce and the first pass before it
        if not self.cfg.apply:
            return pd.DataFrame([{"volume": v.id, "result": "NOT RUN: dry run: nothing written"} for v in self.volumes])
        if self.errors:
            return pd.DataFrame([{"result": "NOT RUN: the checks above failed"}])
        if not self._targets_ours():
            return pd.DataFrame([{"result": "NOT RUN: a target volume holds data k3smig did not write"}])
        rows = []
        sent = 0
        name = "final pass" if self.passes else "copy"
        for v in progress(self.volumes, desc="final pass"):
            manifest = self._final_manifest(v)
            self.save_text(f"manifests/{v.namespace}__{v.claim}.source.json", manifest.to_json())
            rec = copy_pass(self._source(v), self._target(v), self._plan(v), source=manifest, name=name)
            self.passes.append(rec)
            rows.append(rec.row() | {CHECKSUMS: _checksums(v, "source")})
            sent += rec.bytes_sent
        self.summary["bytes sent"] = sent
        return self.save_table("transfer", pd.DataFrame(rows), links={CHECKSUMS: "manifests"}, sizes=("bytes sent",))

    def _targets_ours(self) -> bool:
        """Refuse to overwrite a target volume that holds data no k3smig run recorded (case 18), unless asked.

        A volume k3smig wrote carries its state (``dirty`` after a cut stream, ``proven:…`` after a
        proof); an empty one is fair game. Anything else — a marker planted by hand, an earlier
        deployment's data — is replaced only under ``existing: update``, and the report says so.
        """
        for v in self.volumes:
            dst = self._target(v)
            current = dst.manifest()
            if current is None or set(current.entries) <= {"."} or dst.state():
                continue
            if self.cfg.existing == "update":
                self.warnings.append(f"{v.id}: the target volume held {len(current.entries) - 1} entries k3smig did "
                                     "not write; existing=update replaces them")
                continue
            self.errors.append(f"{v.id}: the target volume holds other data ({len(current.entries) - 1} entries k3smig "
                               "did not write): stale target; remove that data (or set existing: update to replace "
                               "it), then re-run")
        return not self.errors

    @step
    def verify(self) -> pd.DataFrame:
        """Re-read every target volume from its disk and compare it entry by entry with the source."""
        self.transfer()  # what is proven is what was copied
        if not self.cfg.apply:
            return pd.DataFrame([{"result": "NOT RUN: dry run: nothing to compare"}])
        if self.errors:
            return pd.DataFrame([{"result": "NOT RUN: the volumes were not copied"}])
        rows = []
        for v in self.volumes:
            proof = prove(self._source(v), self._target(v), self._plan(v), self._final_manifest(v))
            self.proofs[v.id] = proof
            self.save_text(f"manifests/{v.namespace}__{v.claim}.target.json", proof.target.to_json())
            if proof.proven:
                self.verified.add(v.id)
            else:
                self.errors.append(f"{v.id}: {proof.problem()}")
            if proof.owners_ignored:
                self.warnings.append(f"{v.id}: not root: owners were not applied, uid/gid left out of the comparison")
            rows.append({"volume": v.id, "equal": proof.proven, "entries": len(proof.target.entries),
                         "missing": len(proof.diff.missing), "extra": len(proof.diff.extra),
                         "changed": len(proof.diff.changed), "changed on source during copy":
                         len(proof.changed_on_source),
                         "source root hash": self._final_manifest(v).root_hash[:20],
                         "target root hash": proof.target.root_hash[:20],
                         "source checksums": _checksums(v, "source"), "target checksums": _checksums(v, "target")})
        self.summary["volumes verified"] = len(self.verified)
        return self.save_table("manifest_compare", pd.DataFrame(rows),
                               links={"source checksums": "manifests", "target checksums": "manifests"})

    @contextmanager
    def _fetched(self, side: SourceVolume | TargetVolume, paths: list[str]) -> Iterator[tuple[Path, list[str]]]:
        """Small files of one side in a private temporary folder, removed afterwards."""
        folder = Path(tempfile.mkdtemp(prefix="k3smig-check-"))
        try:
            yield folder, side.fetch(paths, folder) if paths else []
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    @step
    def app_checks(self) -> pd.DataFrame:
        """Application proofs on both sides: SQLite, Grafana, Vaultwarden, Prometheus blocks and config."""
        self.verify()  # the proofs hold the target manifests
        if not self.cfg.apply:
            return pd.DataFrame([{"result": "NOT RUN: dry run: no target data to check"}])
        if self.errors:
            return pd.DataFrame([{"result": "NOT RUN: the volumes above are not proven equal"}])
        rows: list[dict[str, Any]] = []
        for v in self.volumes:
            rows += self._volume_checks(v)
        rows += self._prometheus_rows()
        rows += self._runner_rows()
        for row in rows:
            if row["result"] == ReportStatus.FAIL:
                self.errors.append(f"{row['volume']}: {row['check']} {row['detail']}")
        return self.save_table("app_checks", pd.DataFrame(rows))

    def _volume_checks(self, v: VolumeRef) -> list[dict[str, Any]]:
        source, target = self._final_manifest(v), self.proofs[v.id].target
        wanted = sorted(set(database_paths(source)) | set(block_meta_paths(source)))
        with self._fetched(self._source(v), wanted) as (src, _), self._fetched(self._target(v), wanted) as (dst, _):
            rows = self._sqlite_rows(v, src, dst, databases(database_paths(source)))
            rows += self._app_rows(v, source, target, src, dst)
        return rows

    def _sqlite_rows(self, v: VolumeRef, src: Path, dst: Path, dbs: list[str]) -> list[dict[str, Any]]:
        rows = []
        for rel in dbs:
            if not (dst / rel).is_file():
                rows.append({"volume": v.id, "check": f"sqlite {rel}", "result": ReportStatus.FAIL,
                             "detail": "missing on target"})
                continue
            a, b = sqlite_check(src / rel), sqlite_check(dst / rel)
            diffs = compare_sqlite(a, b)
            rows.append({"volume": v.id, "check": f"sqlite {rel}", "result": ReportStatus.of(b.ok and not diffs),
                         "detail": f"integrity {b.integrity}; {len(b.tables)} tables, {sum(b.tables.values())} rows"
                         + (f"; differs: {', '.join(diffs[:3])}" if diffs else "; row counts equal")})
        return rows

    def _app_rows(self, v: VolumeRef, source: Manifest, target: Manifest, src: Path, dst: Path
                  ) -> list[dict[str, Any]]:
        rows = []
        if (src / "grafana.db").is_file():
            a, b = grafana_dashboards(src / "grafana.db"), grafana_dashboards(dst / "grafana.db")
            same = [(d.uid, d.version) for d in a] == [(d.uid, d.version) for d in b]
            self.save_table(f"grafana_dashboards_{v.claim}", pd.DataFrame([vars(d) for d in b]))
            rows.append({"volume": v.id, "check": "grafana dashboards", "result": ReportStatus.of(same),
                         "detail": f"{len(b)} dashboards; uid/version {'equal' if same else 'differ'}"})
            for key in grafana_secret_key(self.objects + self._config_objects(), self.target.list_objects(),
                                          v.namespace, v.claim):
                rows.append({"volume": v.id, "check": "grafana secret_key",
                             "result": ReportStatus.of(key.travelled is not False), "detail": key.describe()})
        if (src / "db.sqlite3").is_file() and "attachments" in source.entries:
            a_files, b_files = vaultwarden_files(src / "db.sqlite3", source), vaultwarden_files(dst / "db.sqlite3",
                                                                                              target)
            ok = b_files.ok and a_files.keys == b_files.keys
            rows.append({"volume": v.id, "check": "vaultwarden keys, attachments, sends",
                         "result": ReportStatus.of(ok), "detail": b_files.describe()})
            if b_files.orphans:
                self.warnings.append(f"{v.id}: {len(b_files.orphans)} attachment files no row references")
        metas = block_meta_paths(source)
        if metas:
            a_blocks, b_blocks = prometheus_blocks(src, metas), prometheus_blocks(dst, metas)
            same = a_blocks == b_blocks and len(b_blocks) == len(metas)
            rows.append({"volume": v.id, "check": "prometheus TSDB blocks", "result": ReportStatus.of(same),
                         "detail": f"{len(b_blocks)} blocks, {sum(b.series for b in b_blocks)} series; ULIDs, "
                         f"time ranges and series counts {'equal' if same else 'differ'}"})
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
            # without promtool only the structure was checked: less than asked, so never a plain PASS
            result = (ReportStatus.FAIL if fail else ReportStatus.PASS if check.tool == "promtool"
                      else ReportStatus.DEGRADED)
            if result == ReportStatus.DEGRADED:
                self.degraded.append(f"{ref(obj).id}: prometheus config checked for structure only ({check.tool}): "
                                     "install promtool for the real check")
            rows.append({"volume": ref(obj).id, "check": f"prometheus config ({check.tool})",
                         "result": result, "detail": (check.note or check.output)[:200]})
        return rows

    def _runner_rows(self) -> list[dict[str, Any]]:
        """GitLab Runner: the old and the new runner must not run at once with the same registration."""
        rows = []
        for obj in self.objects:
            if not is_singleton(obj):
                continue
            held = int(get_path(obj, "spec.replicas", 1) or 0) == 0
            intended = (get_path(obj, "metadata.annotations", {}) or {}).get(INTENDED)
            detail = (f"held at 0 on the target until cutover, with {intended} replica(s) recorded: the source runner "
                      "keeps its jobs, never two runners with one registration" if held else
                      "runs on the target while the source runner may still run: two runners with one registration "
                      "take each other's jobs; stop one")
            rows.append({"volume": ref(obj).id, "check": "gitlab runner overlap", "result": ReportStatus.of(held),
                         "detail": detail})
        return rows

    @step
    def release(self) -> pd.DataFrame:
        """Scale held workloads back to their recorded replicas once every volume they mount is proven."""
        self.app_checks()  # the proofs and the application checks decide
        rows, releasing = [], []
        for obj in self.objects:
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            if INTENDED not in ann or ann.get(VERIFIED) or ann.get(HELD_UNTIL):
                continue
            ns = ref(obj).namespace
            needed = [f"{ns}/{c}" for c in required_claims(obj)]
            unproven = [c for c in needed if c not in self.verified and c not in self.skipped]
            ok = not unproven and self.cfg.apply and not self.errors
            why = ("dry run: held at 0 replicas" if not self.cfg.apply else
                   f"held at 0 replicas: volumes not proven: {', '.join(unproven)}" if unproven else
                   "held at 0 replicas: the phase has errors (see above)")
            rows.append({"workload": ref(obj).id, "claims": ", ".join(needed), "replicas": ann[INTENDED],
                         "released": ReportStatus.PASS if ok else f"{ReportStatus.NOT_RUN}: {why}"})
            if ok:
                releasing.append(release(obj))
        if releasing:
            self.target.apply(releasing, dry_run=False, existing="update")
            self.summary["workloads released"] = len(releasing)
            self._ready(releasing, rows)
        return self.save_table("released", pd.DataFrame(rows))

    def _ready(self, released: list[Obj], rows: list[dict[str, Any]]) -> None:
        """Live target: wait for the released workloads; the downtime window runs from quiesce to ready."""
        wait = getattr(self.target, "wait_ready", None)
        if wait is None:
            return
        by_id = {r["workload"]: r for r in rows}
        for obj in released:
            wait([obj], timeout=300)
            ready = _now()
            row = by_id[ref(obj).id]
            row["ready at"] = ready
            started = self._quiesce_time(obj)
            if started:
                row["scaled down at"] = started
                row["downtime (s)"] = int((_parse(ready) - _parse(started)).total_seconds())
        downtimes = [int(r["downtime (s)"]) for r in rows if "downtime (s)" in r]
        if downtimes:  # the key figure of a live cutover: how long an application was away
            self.summary["longest downtime (s)"] = max(downtimes)

    def _config_objects(self) -> list[Obj]:
        """Source ConfigMaps and Secrets (where a Grafana ``secret_key`` may live)."""
        return [o for o in self.source.list_objects() if o.get("kind") in ("ConfigMap", "Secret")]

    def _quiesce_time(self, obj: Obj) -> str:
        for wid, at in self.quiesced_at.items():
            kind, ns, name = wid.split("/", 2)
            if (kind, ns, name) == (obj.get("kind"), ref(obj).namespace, ref(obj).name):
                return at
        return ""

    def helpers(self) -> pd.DataFrame:
        """Who read and wrote each volume (helper pod or folder, user and why)."""
        self.release()  # every volume session the phase opens is open by then
        rows = [vars(s.access) | {"volume": vid} for vid, s in self._src.items()]
        rows += [vars(t.access) | {"volume": vid, "why": self.users.get(vid, (None, ""))[1] or t.access.why}
                 for vid, t in self._dst.items()]
        return self.save_table("volume_access", pd.DataFrame(rows))

    def finish(self) -> pd.DataFrame:
        """Close the volume sessions (helper pods deleted), then write the phase result."""
        self.close()
        left = getattr(self.target, "helpers_left", None)
        if left is not None and self.cfg.apply:
            remaining = left() + getattr(self.source, "helpers_left", lambda: [])()
            if remaining:
                self.errors.append(f"helper pods left behind: {', '.join(remaining)}")
        return super().finish()


def _with_intended(obj: Obj) -> Obj:
    """A source workload as the release rule reads it (its replicas as the intended count)."""
    replicas = get_path(obj, "spec.replicas")
    ann = dict(get_path(obj, "metadata.annotations", {}) or {})
    recorded = ann.get(PRE_QUIESCE)
    ann[INTENDED] = str(recorded if recorded is not None else (1 if replicas is None else replicas))
    return {**obj, "metadata": {**(obj.get("metadata") or {}), "annotations": ann}}


def _checksums(v: VolumeRef, side: str) -> str:
    """File name of a volume's manifest (every entry with its sha256) on one side, under ``manifests/``."""
    return f"{v.namespace}__{v.claim}.{side}.json"


def _parse(stamp: str) -> datetime:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def start(cfg: Settings) -> Data:
    """List the volumes and open both sides (phase 70)."""
    return Data(cfg)
