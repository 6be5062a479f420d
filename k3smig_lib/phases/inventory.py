"""Phase 30 · inventory of the source: what runs there, what it stores, what will not fit K3s as is.

Tables only carry metadata: Secrets show names, types and key names, never values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from k3smig_lib.backends.base import Source
from k3smig_lib.core.clean import clean_objects
from k3smig_lib.core.config import Settings
from k3smig_lib.core.lint import Capacity, lint
from k3smig_lib.core.nginxannot import annotation_risks
from k3smig_lib.core.objects import Obj, annotations_of, get_path, intended_replicas, pod_spec, ref
from k3smig_lib.infra.sizing import demand_of, sizing_rows, verdict
from k3smig_lib.phases._base import PhaseRun
from k3smig_lib.phases.context import clean_options, open_source, selected_objects
from k3smig_lib.show import batch_mode, figure

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob", "Job", "ReplicaSet", "Pod")
PHASE = "30_inventory_source"


def _containers(spec: Obj) -> list[Obj]:
    return list(spec.get("containers") or []) + list(spec.get("initContainers") or [])


def _owned(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("ownerReferences"))


def workload_rows(objects: list[Obj]) -> list[dict[str, Any]]:
    """One row per workload (owned ReplicaSets/Pods/Jobs are counted under their owner, not listed)."""
    rows = []
    for obj in objects:
        if obj.get("kind") not in WORKLOAD_KINDS or _owned(obj):
            continue
        spec = pod_spec(obj) or {}
        sc = spec.get("securityContext") or {}
        claims = [v["persistentVolumeClaim"]["claimName"] for v in spec.get("volumes") or []
                  if "persistentVolumeClaim" in v]
        r = ref(obj)
        rows.append({
            "namespace": r.namespace, "kind": r.kind, "name": r.name,
            "replicas": intended_replicas(obj) if r.kind in ("Deployment", "StatefulSet") else "",
            "images": ", ".join(c.get("image", "") for c in _containers(spec)),
            "runAsUser": sc.get("runAsUser", ""), "fsGroup": sc.get("fsGroup", ""),
            "pvcs": ", ".join(claims),
            "pinned": "yes" if spec.get("nodeName") or "kubernetes.io/hostname" in (spec.get("nodeSelector") or {})
            else "",
        })
    return rows


class Inventory(PhaseRun):
    """The inventory notebook's state: the source and its selected objects."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.source: Source = open_source(cfg)
        self.objects = selected_objects(cfg, self.source)

    def cluster(self) -> pd.DataFrame:
        """Where the inventory comes from."""
        info = self.source.info()
        return self.save_table("cluster", pd.DataFrame([vars(info)]))

    def objects_by_kind(self) -> pd.DataFrame:
        """Objects per kind (rows) and namespace (columns), with totals."""
        counts = Counter((ref(o).namespace or "(cluster)", ref(o).kind) for o in self.objects)
        frame = pd.DataFrame([{"namespace": ns, "kind": k, "objects": n} for (ns, k), n in sorted(counts.items())])
        self.save_table("objects_by_kind", frame)
        self.summary.update({"objects": len(self.objects), "namespaces": int(frame["namespace"].nunique())})
        pivot = frame.pivot_table(index="kind", columns="namespace", values="objects", aggfunc="sum", fill_value=0)
        pivot["total"] = pivot.sum(axis=1)
        pivot.columns.name = None
        return pivot.sort_values("total", ascending=False)

    def workloads(self) -> pd.DataFrame:
        """Workloads with images, owners of their files and the claims they mount."""
        return self.save_table("workloads", pd.DataFrame(workload_rows(self.objects)))

    def services(self) -> pd.DataFrame:
        """Services with type, addresses and ports (nodePorts included)."""
        rows = []
        for o in self.objects:
            if o.get("kind") != "Service":
                continue
            ports = get_path(o, "spec.ports", []) or []
            rows.append({
                "namespace": ref(o).namespace, "name": ref(o).name, "type": get_path(o, "spec.type", "ClusterIP"),
                "clusterIP": get_path(o, "spec.clusterIP", ""),
                "ports": ", ".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports),
                "nodePorts": ", ".join(str(p["nodePort"]) for p in ports if p.get("nodePort")),
                "selector": "yes" if get_path(o, "spec.selector") else "no (manual endpoints)",
            })
        return self.save_table("services", pd.DataFrame(rows))

    def ingresses(self) -> pd.DataFrame:
        """Ingresses with class, hosts, TLS Secrets and issuer."""
        rows = []
        for o in self.objects:
            if o.get("kind") != "Ingress":
                continue
            ann = annotations_of(o)
            rows.append({
                "namespace": ref(o).namespace, "name": ref(o).name,
                "class": get_path(o, "spec.ingressClassName") or ann.get("kubernetes.io/ingress.class", ""),
                "hosts": ", ".join(r.get("host", "") for r in get_path(o, "spec.rules", []) or []),
                "tls secrets": ", ".join(t.get("secretName", "") for t in get_path(o, "spec.tls", []) or []),
                "issuer": ann.get("cert-manager.io/cluster-issuer") or ann.get("cert-manager.io/issuer", ""),
            })
        return self.save_table("ingresses", pd.DataFrame(rows))

    def storage(self) -> pd.DataFrame:
        """PVCs with class, size, access modes, bound PV and whether the volume's data was exported."""
        exported = {v.id for v in self.source.list_volumes()}
        rows = []
        for o in self.objects:
            if o.get("kind") != "PersistentVolumeClaim":
                continue
            r = ref(o)
            rows.append({
                "namespace": r.namespace, "claim": r.name,
                "storageClass": get_path(o, "spec.storageClassName", ""),
                "size": get_path(o, "spec.resources.requests.storage", ""),
                "accessModes": ", ".join(get_path(o, "spec.accessModes", []) or []),
                "volume": get_path(o, "spec.volumeName", ""),
                "data exported": f"{r.namespace}/{r.name}" in exported,
            })
        return self.save_table("storage", pd.DataFrame(rows))

    def secrets(self) -> pd.DataFrame:
        """Secrets as metadata only: name, type, key names, number of keys. Never values."""
        rows = []
        for o in self.objects:
            if o.get("kind") != "Secret":
                continue
            keys = sorted(set(o.get("data") or {}) | set(o.get("stringData") or {}))
            rows.append({"namespace": ref(o).namespace, "name": ref(o).name, "type": o.get("type", "Opaque"),
                         "keys": ", ".join(keys), "owned": _owned(o)})
        return self.save_table("secrets_metadata", pd.DataFrame(rows))

    def crds_and_rbac(self) -> pd.DataFrame:
        """CRDs, and the RBAC objects that grant rights to the migrated applications."""
        kinds = ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
        rows = [{"kind": ref(o).kind, "namespace": ref(o).namespace, "name": ref(o).name,
                 "detail": len(o.get("rules") or o.get("subjects") or get_path(o, "spec.versions", []) or [])}
                for o in self.objects if o.get("kind") in kinds]
        return self.save_table("crds_rbac", pd.DataFrame(rows))

    def risks(self) -> pd.DataFrame:
        """The K3s compatibility lint: what will not work as is, and how it is fixed."""
        cap = Capacity(disk_gb=self.cfg.disk_gb, cpu=self.cfg.vm_cpu, memory_gib=self.cfg.vm_memory_gib)
        risks = lint(self.objects, cap, clean_options(self.cfg))
        risks += annotation_risks(self.objects, self.cfg.ingress_controller)
        frame = pd.DataFrame([vars(r) for r in risks])
        if not frame.empty:
            order = {"error": 0, "warning": 1, "info": 2}
            frame = frame.sort_values(by=["severity", "id"], key=lambda s: s.map(order) if s.name == "severity"
                                      else s).reset_index(drop=True)
            for sev in ("error", "warning"):
                self.summary[f"risks ({sev})"] = int((frame["severity"] == sev).sum())
        return self.save_table("risks", frame)

    def sizing(self) -> pd.DataFrame:
        """Do the workloads' requests fit one VM of ``instance_type`` with headroom? If not, the shapes that would.

        Counted: what the migration applies (the cleaned export), replicas × pod requests, DaemonSets once per
        node, K3s and the platform add-ons reserved on each node, 20 % of the rest kept free. Past one VM the
        proposal is the Terraform module's: ``server_count`` 3 (embedded etcd), then ``agent_count``.
        """
        report = clean_objects(self.objects, clean_options(self.cfg))
        rows = sizing_rows(demand_of(report.kept()), self.cfg.instance_type, vcpu=self.cfg.vm_cpu,
                           ram_gib=self.cfg.vm_memory_gib)
        self.summary["sizing"] = verdict(rows)
        if not rows[0]["holds"]:
            self.warnings.append(f"sizing: {verdict(rows)}")
        return self.save_table("sizing", pd.DataFrame(rows))

    def chart(self) -> Any:
        """Objects per namespace, stacked by kind (top kinds)."""
        counts = Counter((ref(o).namespace or "(cluster)", ref(o).kind) for o in self.objects)
        frame = pd.DataFrame([{"namespace": n, "kind": k, "n": c} for (n, k), c in counts.items()])
        pivot = frame.pivot_table(index="namespace", columns="kind", values="n", aggfunc="sum", fill_value=0)
        top = pivot.sum().sort_values(ascending=False).index[:10]
        pivot = pivot[top]
        fig = Figure(figsize=(9, 4))
        ax = fig.subplots()
        left = pd.Series(0, index=pivot.index)
        for kind in pivot.columns:
            ax.barh(pivot.index, pivot[kind], left=left, label=kind)
            left = left + pivot[kind]
        ax.set_xlabel("objects")
        ax.set_title("Source objects per namespace (top 10 kinds)")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        return figure(fig)

    def explore(self) -> Any:
        """Filter the inventory by namespace and kind: a widget in JupyterLab, a static table under papermill."""
        frame = pd.DataFrame([{"namespace": ref(o).namespace or "(cluster)", "kind": ref(o).kind,
                               "name": ref(o).name} for o in self.objects])
        if batch_mode():  # no widget under papermill: kinds across namespaces instead
            return (frame.groupby("kind").agg(objects=("name", "size"), namespaces=("namespace", "nunique"))
                    .reset_index().sort_values("objects", ascending=False, ignore_index=True))
        import ipywidgets as widgets
        from IPython.display import display

        ns = widgets.Dropdown(options=["(all)", *sorted(frame["namespace"].unique())], description="namespace")
        kind = widgets.Dropdown(options=["(all)", *sorted(frame["kind"].unique())], description="kind")
        out = widgets.Output()

        def refresh(_: object = None) -> None:
            view = frame
            if ns.value != "(all)":
                view = view[view["namespace"] == ns.value]
            if kind.value != "(all)":
                view = view[view["kind"] == kind.value]
            out.clear_output()
            with out:
                display(view.reset_index(drop=True))

        ns.observe(refresh, names="value")
        kind.observe(refresh, names="value")
        refresh()
        return widgets.VBox([widgets.HBox([ns, kind]), out])


def start(cfg: Settings) -> Inventory:
    """Open the source and start phase 30."""
    return Inventory(cfg)
