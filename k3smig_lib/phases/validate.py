"""Phase 90 · validate the migration: compare source and target, and give one verdict.

Every comparison re-reads the target (verification never trusts the writer's report): objects per
namespace and kind with each difference explained by rule IDs, secret fingerprints per key, volume
manifests re-hashed from disk, application checks, and the outcome of every earlier phase.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import pandas as pd

from k3smig_lib.core.clean import CleanReport
from k3smig_lib.core.config import Settings
from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.nginxannot import annotation_risks
from k3smig_lib.core.objects import Obj, get_path, ref
from k3smig_lib.core.ownership import OwnershipPlan
from k3smig_lib.core.secrets import Fingerprinter
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases._datapath import compare_volume
from k3smig_lib.phases.catalog import FINDINGS, PHASES, ReportStatus, phase_dir, read_result, report_status
from k3smig_lib.phases.context import cleaned, open_source, open_target
from k3smig_lib.phases.export import read_cleaned
from k3smig_lib.phases.secrets import GOOD, fingerprint_comparison, migrated_secrets

PHASE = "90_validate_migration"
#: The steps that each check one area, in the order the verdict lists the areas.
AREA_STEPS = ("objects", "health", "secrets", "volumes", "apps", "phases")
#: The areas of the verdict (a directory target has no health check), in that order.
AREAS = ("objects", "health", "secrets", "volumes", "applications", "phases")
PASS_WITH_NOTES = f"{ReportStatus.PASS} with notes"
PLAN_ONLY = "PLAN ONLY"


class Validate(PhaseRun):
    """State of the validation notebook: one check table per area, then the verdict."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.source = open_source(cfg)
        self.target = open_target(cfg)
        self.checks: dict[str, bool] = {}
        self.skipped: dict[str, str] = {}
        self.live_data = cfg.target_kind == "cluster" or cfg.source_kind == "cluster"

    @step
    def objects(self) -> pd.DataFrame:
        """Objects per namespace/kind: exported, dropped (with rule IDs), expected, found on the target."""
        report = cleaned(self.cfg, self.source)
        if self.cfg.ingress_controller == "traefik":
            for risk in annotation_risks([c.original for c in report.kept()], "traefik"):
                if risk.severity == "warning":
                    self.warnings.append(f"{risk.ref_id}: {risk.message} (to fix this, {risk.fix})")
        exported = Counter((c.ref.namespace, c.ref.kind) for c in report.objects)
        live_jobs = self.cfg.target_kind == "cluster"  # standalone Jobs wait for cutover on a live target
        expected = Counter((c.ref.namespace, c.ref.kind) for c in report.kept()
                           if not (live_jobs and c.ref.kind == "Job"))
        found = self._found(report)
        rules: dict[tuple[str, str], set[str]] = defaultdict(set)
        for c in report.dropped():
            rules[(c.ref.namespace, c.ref.kind)].update(x.rule_id for x in c.changes if x.action == "drop")
        rows = []
        for key in sorted(set(exported) | set(found)):
            extra = found[key] - expected[key]
            ok = extra >= 0 and (extra == 0 or key[1] == "Secret")
            why = ", ".join(sorted(rules[key]))
            if live_jobs and key[1] == "Job":
                why = (why + "; " if why else "") + "standalone Jobs skipped until cutover"
            if extra > 0:
                why = (why + "; " if why else "") + f"{extra} platform Secret(s) from phase 50"
            rows.append({"namespace": key[0] or "(cluster)", "kind": key[1], "exported": exported[key],
                         "dropped": exported[key] - expected[key], "expected": expected[key], "target": found[key],
                         "explained by": why, "ok": ok})
        frame = pd.DataFrame(rows)
        self.checks["objects"] = bool(frame["ok"].all()) if not frame.empty else False
        return self.save_table("objects", frame)

    @step
    def health(self) -> pd.DataFrame:
        """On a live target: workloads ready, claims bound (or waiting for their first consumer), ingresses."""
        if self.cfg.target_kind != "cluster":
            return pd.DataFrame([{"health": "directory target: nothing runs, manifests and data are compared"}])
        from k3smig_lib.backends.live_target import LiveTarget
        from k3smig_lib.k8s.readiness import READINESS_PREDICATES

        assert isinstance(self.target, LiveTarget)
        kinds = ("Deployment", "StatefulSet", "DaemonSet", "PersistentVolumeClaim", "Ingress")
        cleaned_objects = read_cleaned(self.cfg)
        rows = [self._service_row(svc, cleaned_objects) for svc in cleaned_objects
                if svc.get("kind") == "Service" and get_path(svc, "spec.selector")]
        for obj in cleaned_objects:
            if obj.get("kind") not in kinds:
                continue
            live = self.target.get(obj)
            ready = live is not None and READINESS_PREDICATES[obj["kind"]](live)
            note = "" if ready else "absent" if live is None else "not ready"
            if live is not None and obj["kind"] == "PersistentVolumeClaim" and not ready:
                ready, note = True, "Pending until its first consumer (WaitForFirstConsumer; workloads held at 0)"
            if live is not None and obj["kind"] == "Ingress" and not ready:
                ready, note = True, "no address published yet (the cutover probes of phase 80 check it)"
            rows.append({"object": ref(obj).id, "ready": ready, "note": note})
        frame = pd.DataFrame(rows)
        self.checks["health"] = bool(frame["ready"].all()) if not frame.empty else True
        return self.save_table("health", frame)

    def _service_row(self, svc: Obj, objects: list[Obj]) -> dict[str, object]:
        """A Service has ready endpoints, unless every workload it selects is held at 0 until the data phase."""
        from k3smig_lib.backends.live_target import LiveTarget
        from k3smig_lib.k8s.readiness import service_has_endpoints

        assert isinstance(self.target, LiveTarget)
        live = self.target.get(svc)
        if live is None:
            return {"object": ref(svc).id, "ready": False, "note": "absent"}
        selector = get_path(svc, "spec.selector") or {}
        backing = [o for o in objects if ref(o).namespace == ref(svc).namespace and o.get("kind") in (
            "Deployment", "StatefulSet", "DaemonSet") and selector.items() <= (get_path(
                o, "spec.template.metadata.labels") or {}).items()]
        held = [self.target.get(o) for o in backing]
        if backing and all(h is not None and get_path(h, "spec.replicas", 1) == 0 for h in held):
            return {"object": ref(svc).id, "ready": True, "note": "no endpoints: its workload is held at 0 replicas"}
        ns = ref(svc).namespace
        slices = self.target.list_objects_of("discovery.k8s.io/v1", "EndpointSlice", ns)
        ok = service_has_endpoints(live, slices)
        return {"object": ref(svc).id, "ready": ok, "note": "" if ok else "no ready endpoints"}

    def _found(self, report: CleanReport) -> Counter[tuple[str, str]]:
        """Objects present on the target per (namespace, kind).

        A directory target is read whole. A live target is asked for each expected object (it may have
        existed already, identical, and so not be managed by k3smig) plus the objects k3smig manages.
        """
        if self.cfg.target_kind != "cluster":
            return Counter((ref(o).namespace, ref(o).kind) for o in self.target.list_objects())
        from k3smig_lib.backends.live_target import LiveTarget

        assert isinstance(self.target, LiveTarget)
        present = {c.ref.id: (c.ref.namespace, c.ref.kind) for c in report.kept()
                   if c.cleaned is not None and self.target.get(c.cleaned) is not None}
        for obj in self.target.list_objects():
            present.setdefault(ref(obj).id, (ref(obj).namespace, ref(obj).kind))
        return Counter(present.values())

    @step
    def secrets(self) -> pd.DataFrame:
        """Secret fingerprints per key, source against target."""
        frame = pd.DataFrame(fingerprint_comparison(self.target, migrated_secrets(self.cfg), Fingerprinter.from_env()))
        self.checks["secrets"] = bool(frame["status"].isin(GOOD).all()) if not frame.empty else True
        return self.save_table("secrets", frame)

    @step
    def volumes(self) -> pd.DataFrame:
        """Target volumes re-read from their disk (helper pod or folder) against the source manifests of phase 70."""
        if self.live_data and not self.cfg.apply:
            self.skipped["volumes"] = "dry run: reading a live volume starts a helper pod"
            return pd.DataFrame([{"volumes": "not compared: " + self.skipped["volumes"]}])
        rows = []
        data_dir = phase_dir(self.cfg, "70_migrate_data") / "manifests"
        for vol in self.source.list_volumes():
            src_file = data_dir / f"{vol.namespace}__{vol.claim}.source.json"
            if not src_file.is_file():
                rows.append({"volume": vol.id, "equal": vol.id in self._left_out(), "detail":
                             self._left_out().get(vol.id, "not migrated (phase 70 did not run)")})
                continue
            with self.target.volume(vol) as tv:
                target = tv.manifest()
                exact = tv.owners_exact
            if target is None:
                rows.append({"volume": vol.id, "equal": False, "detail": "the target volume is missing"})
                continue
            diff, _ = compare_volume(Manifest.from_json(src_file.read_text()), target, self._plan(vol.id),
                                     owners_exact=exact)
            rows.append({"volume": vol.id, "equal": diff.equal, "detail": diff.summary()})
        frame = pd.DataFrame(rows)
        self.checks["volumes"] = bool(frame["equal"].all()) if not frame.empty else True
        return self.save_table("volumes", frame)

    def _left_out(self) -> dict[str, str]:
        """Volumes phase 70 chose not to move (``include_loki: false``), with why."""
        path = phase_dir(self.cfg, "70_migrate_data") / "volumes.csv"
        if not path.is_file():
            return {}
        frame = pd.read_csv(path).fillna("")
        return {str(r["volume"]): str(r["moves"]) for _, r in frame.iterrows() if str(r["moves"]).startswith("no")}

    def _plan(self, volume_id: str) -> OwnershipPlan | None:
        """The ownership plan phase 70 applied (target owners), read back from its table."""
        path = phase_dir(self.cfg, "70_migrate_data") / "ownership_plan.csv"
        if not path.is_file():
            return None
        frame = pd.read_csv(path, dtype=str).fillna("")
        rows = frame[frame["volume"] == volume_id]
        if rows.empty:
            return None
        row = rows.iloc[0]
        uid, gid = str(row["target uid"]), str(row["target gid"])
        return OwnershipPlan(volume_id, [], int(uid) if uid else None, int(gid) if gid else None,
                             "pod securityContext", "chown" if row["action"] == "chown" else "preserve", "")

    @step
    def apps(self) -> pd.DataFrame:
        """Application checks recorded by phase 70."""
        path = phase_dir(self.cfg, "70_migrate_data") / "app_checks.csv"
        frame = pd.read_csv(path) if path.is_file() else pd.DataFrame()
        passed = (ReportStatus.PASS, ReportStatus.DEGRADED)
        self.checks["applications"] = bool(len(frame)) and bool(frame.get("result").isin(passed).all())
        if len(frame):
            self.degraded += [f"{r['volume']}: {r['check']} ran with less than asked" for _, r in frame.iterrows()
                              if r["result"] == ReportStatus.DEGRADED]
        return self.save_table("apps", frame)

    @step
    def phases(self) -> pd.DataFrame:
        """Outcome of every earlier phase of this run, as each phase recorded it (counts are its own lists)."""
        rows: list[dict[str, object]] = []
        for name in PHASES[:-1]:
            res = read_result(self.cfg, name)
            if res is None:
                rows.append({"phase": name, "status": f"{ReportStatus.NOT_RUN}: not run in this run folder"})
                continue
            status = str(res.get("report_status") or report_status(res))
            row: dict[str, object] = {"phase": name,
                                      "status": status + (f": {res['not_run']}" if res.get("not_run") else "")}
            rows.append({**row, **{kind: len(res.get(kind) or []) for kind in FINDINGS}})
            if status == ReportStatus.DEGRADED:
                self.degraded.append(f"phase {name} is DEGRADED (see its report)")
        frame = pd.DataFrame(rows)
        self.checks["phases"] = not any(str(s).startswith(ReportStatus.FAIL) for s in frame["status"]) and all(
            read_result(self.cfg, name) is not None for name in PHASES[:-1])
        return self.save_table("phases", frame)

    @step
    def verdict(self) -> pd.DataFrame:
        """PASS only when every area passed; the reasons otherwise (each area is checked first, once)."""
        for name in AREA_STEPS:
            getattr(self, name)()
        verdict = verdict_of(self.checks, self.degraded, apply=self.cfg.apply)
        self.summary["verdict"] = verdict
        checks = {k: self.checks[k] for k in AREAS if k in self.checks}  # the areas' order, whatever the cells'
        marks: dict[str, str] = {k: ReportStatus.of(v) for k, v in checks.items()}
        marks.update({k: f"{ReportStatus.NOT_RUN}: {why}" for k, why in self.skipped.items()})
        self.summary.update({f"check: {k}": v for k, v in marks.items()})
        if verdict == ReportStatus.FAIL:
            self.errors.append("failed checks: " + ", ".join(k for k, v in self.checks.items() if not v))
        self.save_json("verdict.json", {"verdict": verdict, "checks": checks, "not checked": self.skipped,
                                        "degraded": self.degraded})
        return pd.DataFrame([{"verdict": verdict, **marks}])


def verdict_of(checks: dict[str, bool], degraded: list[str], *, apply: bool) -> str:
    """The run's verdict from the areas checked.

    PASS when every area passed (with notes when something ran with less than asked), FAIL when any failed
    or none was checked, PLAN ONLY in a dry run (nothing was written, so nothing is judged).

    Examples:
        >>> verdict_of({"objects": True}, ["promtool missing"], apply=True), verdict_of({}, [], apply=True)
        ('PASS with notes', <ReportStatus.FAIL: 'FAIL'>)
    """
    if not apply:
        return PLAN_ONLY
    if not checks or not all(checks.values()):
        return ReportStatus.FAIL
    return PASS_WITH_NOTES if degraded else ReportStatus.PASS


def start(cfg: Settings) -> Validate:
    """Open both sides (phase 90)."""
    return Validate(cfg)


def load_verdict(cfg: Settings) -> str:
    """The verdict of a finished run ("" when phase 90 has not run)."""
    path = phase_dir(cfg, PHASE) / "verdict.json"
    return str(json.loads(path.read_text())["verdict"]) if path.is_file() else ""
