"""Phase 00 · preflight: everything that can be known before any write, checked before any write.

Tools, credentials (names only), both ends reachable and distinct, the K3s compatibility lint and the
capacity of the planned VM. A blocking finding fails the phase, so nothing later runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Any

import pandas as pd

from k3smig_lib.core.clean import clean_objects
from k3smig_lib.core.config import NO_PHONE_HOME, Settings
from k3smig_lib.core.envsecrets import credentials_status
from k3smig_lib.core.lint import (
    PLATFORM_CPU_RESERVE,
    PLATFORM_MEMORY_RESERVE_GIB,
    SYSTEM_DISK_RESERVE_GB,
    Capacity,
    lint,
    requested,
)
from k3smig_lib.core.objects import ref
from k3smig_lib.core.quantity import gib
from k3smig_lib.errors import K3sMigError
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases._charts import capacity_figure
from k3smig_lib.phases.context import clean_options, open_source, open_target, selected_objects
from k3smig_lib.show import figure

PHASE = "00_preflight"
SCW_VARS = ["SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID"]


def _version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False,
                             env={**os.environ, **NO_PHONE_HOME})  # `tofu version` checks for updates otherwise
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else ""


def data_path_checks(namespaces: list[str], side: str) -> list[Any]:
    """What moving volume data needs in each namespace that holds a claim: helper pods, exec, quiesce, marks.

    Source: create/get/delete pods and ``pods/exec``, patch Deployments and StatefulSets (quiesce);
    target: the same pods and exec, and patch PersistentVolumeClaims (the data state annotation).
    """
    from k3smig_lib.k8s.preflight import PermissionCheck

    checks: list[Any] = []
    for ns in namespaces:
        checks += [PermissionCheck(v, "pods", "", ns) for v in ("create", "get", "delete")]
        checks.append(PermissionCheck("create", "pods", "", ns, "exec"))
        if side == "source":
            checks += [PermissionCheck("patch", plural, "apps", ns) for plural in ("deployments", "statefulsets")]
        else:
            checks.append(PermissionCheck("patch", "persistentvolumeclaims", "", ns))
    return checks


class Preflight(PhaseRun):
    """State of the preflight notebook: one table per area, blocking findings collected as errors."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.source = open_source(cfg)
        try:
            self.objects = selected_objects(cfg, self.source)
        except K3sMigError as e:  # keep going: the permissions table below says what is missing
            self.errors.append(f"source: {e}")
            self.objects = []
        self._capacity: list[dict[str, Any]] = []

    def tools(self) -> pd.DataFrame:
        """Tools found on this machine and which phase needs them."""
        rows: list[dict[str, Any]] = [
            {"tool": "python", "needed for": "all phases", "required": True, "found": sys.version.split()[0]},
        ]
        for dist in ("papermill", "nbconvert", "kubernetes", "pandas"):
            rows.append({"tool": dist, "needed for": "all phases", "required": True, "found": metadata.version(dist)})
        iac = shutil.which("tofu") or shutil.which("terraform")
        optional = [
            ("tofu/terraform", iac, [iac or "tofu", "version"], "10 provision (provision: true)", self.cfg.provision),
            ("ansible-playbook", shutil.which("ansible-playbook"), ["ansible-playbook", "--version"],
             "20 configure K3s (provision: true)", self.cfg.provision),
            ("promtool", shutil.which("promtool"), ["promtool", "--version"], "70 Prometheus config check",
             self.cfg.require_promtool),
            ("kubectl", shutil.which("kubectl"), ["kubectl", "version", "--client"], "manual inspection", False),
        ]
        for name, path, cmd, why, required in optional:
            found = _version(cmd) if path else ""
            rows.append({"tool": name, "needed for": why, "required": required, "found": found or "missing"})
            if required and not path:
                self.errors.append(f"{name} is required for {why} but is not on PATH")
        return self.save_table("tools", pd.DataFrame(rows))

    def needed_credentials(self) -> dict[str, list[str]]:
        """Which credential variables this run needs, and what for."""
        needs: dict[str, list[str]] = {v: [] for v in SCW_VARS}
        if self.cfg.provision:
            for v in SCW_VARS:
                needs[v].append("provision the VM (phase 10)")
        if self.cfg.target_kind == "cluster" and self.cfg.manage_dns:
            for v in ("SCW_ACCESS_KEY", "SCW_SECRET_KEY"):
                needs[v].append("external-dns credentials Secret (phase 50)")
        if self.cfg.registry_rewrites:
            needs["SCW_SECRET_KEY"].append("registry pull Secret (phase 50)")
        return needs

    def credentials(self) -> pd.DataFrame:
        """Credential variables: present or not, and what needs them. Values are never read into the report."""
        needs = self.needed_credentials()
        frame = pd.DataFrame(credentials_status(SCW_VARS))
        frame["needed for"] = [", ".join(needs[n]) or "not needed by this run" for n in frame["name"]]
        for _, row in frame.iterrows():
            if needs[row["name"]] and not row["present"]:
                self.errors.append(f"environment variable {row['name']} is not set, needed for "
                                   f"{', '.join(needs[row['name']])} (export it in .envrc)")
        return self.save_table("credentials", frame)

    def endpoints(self) -> pd.DataFrame:
        """Source and target: reachable, versions, identities, and never the same cluster."""
        rows: list[dict[str, Any]] = []
        try:
            rows.append(vars(self.source.info()) | {"side": "source", "objects": len(self.objects)})
        except K3sMigError as e:
            self.errors.append(f"source: {e}")
        try:
            target = open_target(self.cfg)
            rows.append(vars(target.info()) | {"side": "target", "objects": len(target.list_objects())})
        except K3sMigError as e:
            self.errors.append(f"target: {e}")
        src_id = rows[0].get("identity") if rows else ""
        if len(rows) == 2 and src_id and src_id == rows[1].get("identity"):
            self.errors.append("target identical to source (same kube-system UID): refusing to migrate onto itself")
        return self.save_table("endpoints", pd.DataFrame(rows))

    def permissions(self) -> pd.DataFrame:
        """Every verb the run needs, asked of each live cluster (SelfSubjectAccessReview); K3s detection."""
        rows: list[dict[str, Any]] = []
        if self.cfg.source_kind == "cluster":
            try:
                rows += self._source_permissions()
            except K3sMigError as e:
                self.errors.append(f"source: {e}")
        if self.cfg.target_kind == "cluster":
            try:
                rows += self._target_checks()
            except K3sMigError as e:
                self.errors.append(f"target checks: {e}")
        if not rows:
            return pd.DataFrame([{"check": "permissions", "result": "no live cluster in this run"}])
        for row in rows:
            if not row["ok"]:
                self.errors.append(f"{row['side']}: {row['check']} denied (to fix this, {row['fix']})")
        return self.save_table("permissions", pd.DataFrame(rows))

    def _source_permissions(self) -> list[dict[str, Any]]:
        from k3smig_lib.backends.live_source import LiveSource
        from k3smig_lib.k8s.preflight import missing_permissions, read_checks

        assert isinstance(self.source, LiveSource)
        checks = read_checks(self.source.exported_resources())
        checks += data_path_checks(self._claim_namespaces(), "source")
        missing = set(missing_permissions(self.source.kube, checks))
        return [{"side": "source", "check": c.label, "ok": c not in missing, "fix": c.fix} for c in checks]

    def _claim_namespaces(self) -> list[str]:
        """Namespaces holding a source claim (all namespaces, ``""``, when the claims cannot be listed)."""
        try:
            return sorted({v.namespace for v in self.source.list_volumes()})
        except K3sMigError:  # the list permission itself is missing: reported by the read checks
            return [""]

    def _target_checks(self) -> list[dict[str, Any]]:
        from k3smig_lib.backends.live_target import LiveTarget
        from k3smig_lib.k8s.preflight import PermissionCheck, looks_like_k3s, missing_permissions
        from k3smig_lib.phases.context import target_ref
        from k3smig_lib.phases.export import read_cleaned

        target = LiveTarget(target_ref(self.cfg))
        wanted: set[tuple[str, str]] = set()
        for obj in read_cleaned(self.cfg):
            info = target.resources.lookup(obj["apiVersion"], obj["kind"])
            if info is not None:  # unserved kinds are reported by the deploy plan as conflicts
                wanted.add((info.group, info.name))
        verbs = ("get", "create", "patch")
        checks = [PermissionCheck(v, plural, group) for group, plural in sorted(wanted) for v in verbs]
        checks += [PermissionCheck(v, "leases", "coordination.k8s.io", "kube-system") for v in ("create", "update")]
        claims = {ref(o).namespace for o in read_cleaned(self.cfg) if o.get("kind") == "PersistentVolumeClaim"}
        checks += data_path_checks(sorted(claims), "target")
        missing = set(missing_permissions(target.kube, checks))
        rows = [{"side": "target", "check": c.label, "ok": c not in missing, "fix": c.fix} for c in checks]
        evidence = looks_like_k3s(target.kube)
        rows.append({"side": "target", "check": "looks like K3s", "ok": bool(evidence),
                     "fix": "point target_context at the K3s cluster built by phases 10-20 (" +
                            "; ".join(evidence.details) + ")"})
        return rows

    def compatibility(self) -> pd.DataFrame:
        """The K3s compatibility lint; errors block the run."""
        cap = Capacity(disk_gb=self.cfg.disk_gb, cpu=self.cfg.vm_cpu, memory_gib=self.cfg.vm_memory_gib)
        risks = lint(self.objects, cap, clean_options(self.cfg))
        for r in risks:
            if r.severity == "error":
                self.errors.append(f"{r.ref_id}: {r.message} (to fix this, {r.fix})")
            elif r.severity == "warning":  # to read before the migration, no failure: a note, counted as such
                self.notes.append(f"{r.ref_id}: {r.message}")
        self.summary["lint warnings"] = sum(1 for r in risks if r.severity == "warning")
        if self.cfg.ingress_controller == "ingress-nginx":
            self.warnings.append("ingress_controller: ingress-nginx was retired upstream (no releases, no security "
                                 "fixes); to fix this, use K3s's Traefik with its NGINX provider "
                                 "(ingress_controller: traefik) unless an annotation needs NGINX itself")
        return self.save_table("compatibility", pd.DataFrame([vars(r) for r in risks]))

    @step
    def capacity(self) -> pd.DataFrame:
        """What the migrated workloads request against the planned VM (after K3s and the platform add-ons)."""
        cpu, mem, pvc = requested(clean_objects(self.objects, clean_options(self.cfg)))
        rows: list[dict[str, Any]] = [
            {"resource": "CPU requests (cores)", "needed": round(cpu, 2), "VM": self.cfg.vm_cpu,
             "available": round(self.cfg.vm_cpu - PLATFORM_CPU_RESERVE, 2)},
            {"resource": "memory requests (GiB)", "needed": round(mem, 2), "VM": self.cfg.vm_memory_gib,
             "available": round(self.cfg.vm_memory_gib - PLATFORM_MEMORY_RESERVE_GIB, 2)},
            {"resource": "PVC requests (GB)", "needed": round(pvc / 1e9, 1), "VM": self.cfg.disk_gb,
             "available": self.cfg.disk_gb - SYSTEM_DISK_RESERVE_GB},
        ]
        if self.cfg.target_kind == "cluster":
            from k3smig_lib.k8s.client import Kube
            from k3smig_lib.k8s.preflight import node_capacity
            from k3smig_lib.phases.context import target_ref

            nodes = node_capacity(Kube.of(target_ref(self.cfg)))
            rows[0]["target nodes"], rows[1]["target nodes"] = round(nodes.cpu, 2), gib(nodes.memory)
            rows[2]["target nodes"] = round(nodes.ephemeral_storage / 1e9, 1)
        for row in rows:
            limits = [row["available"]] + ([row["target nodes"]] if row.get("target nodes") else [])
            row["fits"] = row["needed"] <= min(limits)
            if not row["fits"] and not row["resource"].startswith("PVC"):  # disk: a lint warning (T3), no error
                self.errors.append(f"{row['resource']}: {row['needed']} needed, only {min(limits)} available")
        self.summary.update({"CPU requests (cores)": rows[0]["needed"], "memory requests (GiB)": rows[1]["needed"],
                             "PVC requests (GB)": rows[2]["needed"]})
        self._capacity = rows
        return self.save_table("capacity", pd.DataFrame(rows))

    def capacity_chart(self) -> Any:
        """Requests against the VM: the share of each resource the migrated workloads take."""
        self.capacity()  # the table this chart draws (computed once)
        return figure(capacity_figure(self._capacity))

    def namespaces(self) -> pd.DataFrame:
        """Namespaces that will be migrated (after include/exclude)."""
        names = sorted({ref(o).name for o in self.objects if o.get("kind") == "Namespace"})
        return pd.DataFrame({"namespace": names})


def start(cfg: Settings) -> Preflight:
    """Open the source and start phase 00."""
    return Preflight(cfg)
