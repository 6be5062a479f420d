"""Phase 60 · deploy the cleaned applications in apply order.

Workloads that mount PersistentVolumeClaims are applied at 0 replicas with their intended count
recorded on the object (``k3smig.io/intended-replicas``); phase 70 releases them once their data is
proven equal. A workload already released by an earlier run stays released, so a re-run changes nothing.

Workloads that must never run on both clusters at once (a GitLab Runner: two runners with one
registration take each other's jobs) are held the same way until cutover, with the reason recorded
(``k3smig.io/held-until: cutover``); the data phase never releases them.
"""

from __future__ import annotations

import copy

import pandas as pd

from k3smig_lib.backends.base import ApplyResult, Target
from k3smig_lib.core.config import Settings
from k3smig_lib.core.objects import Obj, get_path, pod_spec, ref
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases.context import open_target
from k3smig_lib.phases.export import read_cleaned

PHASE = "60_deploy_applications"
INTENDED = "k3smig.io/intended-replicas"
VERIFIED = "k3smig.io/data-verified"
HELD_UNTIL = "k3smig.io/held-until"
SCALABLE = ("Deployment", "StatefulSet")
#: Images of workloads that must not run on the source and the target at the same time.
SINGLETON_IMAGES = ("gitlab/gitlab-runner", "gitlab-runner")


def is_singleton(obj: Obj) -> bool:
    """A workload that must run on one cluster only (a GitLab Runner shares its registration)."""
    containers = (pod_spec(obj) or {}).get("containers") or []
    return obj.get("kind") in SCALABLE and any(any(i in str(c.get("image", "")) for i in SINGLETON_IMAGES)
                                               for c in containers)


def mounts_claims(obj: Obj) -> list[str]:
    """Claims a workload mounts (volumes and StatefulSet volumeClaimTemplates)."""
    spec = pod_spec(obj) or {}
    claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
              if isinstance(v, dict) and "persistentVolumeClaim" in v]
    claims += [t["metadata"]["name"] for t in get_path(obj, "spec.volumeClaimTemplates", []) or []]
    return claims


def hold(obj: Obj) -> Obj:
    """Copy of a workload at 0 replicas with the intended count recorded."""
    held = copy.deepcopy(obj)
    intended = int(get_path(obj, "spec.replicas", 1) or 0)
    held.setdefault("metadata", {}).setdefault("annotations", {})[INTENDED] = str(intended)
    held["spec"]["replicas"] = 0
    return held


def release(held: Obj) -> Obj:
    """Copy of a held workload scaled back to its intended count, marked as data-verified."""
    out = copy.deepcopy(held)
    ann = out["metadata"]["annotations"]
    out["spec"]["replicas"] = int(ann.get(INTENDED, "1"))
    ann[VERIFIED] = "true"
    return out


def desired_objects(cfg: Settings, target: Target) -> tuple[list[Obj], list[dict[str, object]]]:
    """Cleaned objects as phase 60 applies them, and the table of held workloads."""
    existing = {ref(o).id: o for o in target.list_objects()}
    out: list[Obj] = []
    held_rows: list[dict[str, object]] = []
    for obj in read_cleaned(cfg):
        if obj.get("kind") == "Job" and cfg.target_kind == "cluster":
            held_rows.append({"workload": ref(obj).id, "claims": "", "intended replicas": "",
                              "state": "skipped until cutover (a standalone Job would run on the target)"})
            continue
        if is_singleton(obj):
            held = hold(obj)
            held["metadata"]["annotations"][HELD_UNTIL] = "cutover"
            out.append(held)
            held_rows.append({"workload": ref(obj).id, "claims": "", "intended replicas":
                              held["metadata"]["annotations"][INTENDED],
                              "state": "held at 0 until cutover (the source runner keeps its jobs until then)"})
            continue
        claims = mounts_claims(obj) if obj.get("kind") in SCALABLE else []
        if not claims:
            out.append(obj)
            continue
        held = hold(obj)
        current = existing.get(ref(obj).id)
        already = current is not None and (current.get("metadata") or {}).get("annotations", {}).get(VERIFIED)
        out.append(release(held) if already else held)
        held_rows.append({"workload": ref(obj).id, "claims": ", ".join(claims),
                          "intended replicas": held["metadata"]["annotations"][INTENDED],
                          "state": "released (data verified earlier)" if already else "held at 0 until data verified"})
    return out, held_rows


def result_table(result: ApplyResult) -> pd.DataFrame:
    """Apply items as a table (hashes kept: they link to the custody table of phase 40)."""
    return pd.DataFrame([vars(i) for i in result.items])


class Deploy(PhaseRun):
    """State of the deploy notebook."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.target = open_target(cfg)
        self.objects, self.held_rows = desired_objects(cfg, self.target)

    @step
    def plan(self) -> pd.DataFrame:
        """What applying would do, object by object, in apply order (a dry run of the target)."""
        result = self.target.apply(self.objects, dry_run=True, existing=self.cfg.existing)
        frame = result_table(result)
        self.summary["planned changes"] = result.changes
        conflicts = frame[frame["action"] == "conflict"] if not frame.empty else frame
        for _, row in conflicts.iterrows():
            self.errors.append(f"{row['ref_id']}: {row['reason']}")
        return self.save_table("plan", frame)

    def plan_summary(self) -> pd.DataFrame:
        """Planned actions per kind."""
        frame = self.plan().copy()
        frame["kind"] = frame["ref_id"].str.split("/").str[0]
        return frame.groupby(["kind", "action"]).size().rename("objects").reset_index()

    def held(self) -> pd.DataFrame:
        """Workloads kept at 0 replicas until their volumes are verified."""
        return self.save_table("held_workloads", pd.DataFrame(self.held_rows))

    @step
    def apply(self) -> pd.DataFrame:
        """Write the objects (only with ``apply: true`` and no conflict)."""
        self.plan()  # its conflicts stop the apply
        if not self.cfg.apply:
            return pd.DataFrame([{"result": "dry run: nothing written (set apply: true)"}])
        if self.errors:
            return pd.DataFrame([{"result": "not applied: conflicts in the plan"}])
        result = self.target.apply(self.objects, dry_run=False, existing=self.cfg.existing)
        self.summary.update({"created": result.count("create"), "updated": result.count("update"),
                             "unchanged": result.count("unchanged")})
        calls = getattr(self.target, "calls", None)
        if calls is not None:
            self.summary["API calls"] = calls.as_dict()
        return self.save_table("applied", result_table(result))

    def readiness(self) -> pd.DataFrame:
        """Live target: wait until the workloads that run now are Ready (held ones are waited for in phase 70)."""
        self.apply()  # what it waits for
        if self.cfg.target_kind != "cluster" or not self.cfg.apply or self.errors:
            return pd.DataFrame([{"readiness": "not waited: nothing runs in a directory target or a dry run"}])
        frame = readiness_table(self.target, self.objects, timeout=300)
        self.summary["ready workloads"] = len(frame)
        return self.save_table("readiness", frame)


def readiness_table(target: Target, objects: list[Obj], *, timeout: float) -> pd.DataFrame:
    """Wait (one deadline) for the workloads that run now — not the ones held at 0 — and their Services."""
    from k3smig_lib.backends.live_target import LiveTarget

    assert isinstance(target, LiveTarget)
    running = [o for o in objects if o.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")
               and int(get_path(o, "spec.replicas", 1) or 0) > 0]
    waited = target.wait_ready(running, timeout=timeout)
    return pd.DataFrame([{"object": w, "ready": True} for w in waited])


def start(cfg: Settings) -> Deploy:
    """Read the cleaned objects and open the target (phase 60)."""
    return Deploy(cfg)
