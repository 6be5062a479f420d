"""Phase 40 · export and clean the source manifests.

Every object is kept as exported (hashed, Secrets redacted), cleaned by the rule engine, and shown as a
before/after diff annotated with the rule IDs that fired — so a reviewer sees *why* each field or
object disappeared. Later phases read ``cleaned/objects.yaml``; Secrets travel through phase 50 only.
"""

from __future__ import annotations

import difflib
from collections import Counter
from typing import Any

import pandas as pd
import yaml

from k3smig_lib.core import yamlout
from k3smig_lib.core.clean import RULES, CleanedObject, CleanReport
from k3smig_lib.core.clean.routes import is_route, route_to_ingress
from k3smig_lib.core.config import Settings
from k3smig_lib.core.nginxannot import nginx_annotations
from k3smig_lib.core.objects import Obj, annotations_of, sha256_of
from k3smig_lib.core.order import sort_for_apply
from k3smig_lib.core.secrets import redact
from k3smig_lib.phases._base import PhaseRun
from k3smig_lib.phases._charts import bar_figure
from k3smig_lib.phases.catalog import phase_dir
from k3smig_lib.phases.context import cleaned, open_source
from k3smig_lib.show import figure

PHASE = "40_export_manifests"
CLEANED_FILE = "cleaned/objects.yaml"
#: Reads back what :meth:`Export.write` wrote (libyaml's parser where present: the same values, faster).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(obj: Obj | None) -> list[str]:
    if obj is None:
        return []
    return yamlout.dump(obj, sort_keys=True, width=100).splitlines(keepends=True)


def annotated_diff(item: CleanedObject) -> str:
    """Unified diff original → cleaned, headed by the rules that fired and their reasons (Secrets redacted)."""
    head = [f"# {item.ref.id}", f"# original sha256 {item.original_sha256}"]
    for change in item.changes:
        rule = RULES.get(change.rule_id)
        why = change.note or (rule.reason if rule else "")
        head.append(f"# [{change.rule_id}] {change.action} {change.path}: {why}")
    before, after = _yaml(redact(item.original)), _yaml(redact(item.cleaned) if item.cleaned else None)
    diff = difflib.unified_diff(before, after, fromfile="exported", tofile="cleaned" if after else "(dropped)")
    return "\n".join(head) + "\n" + "".join(diff)


def diff_name(item: CleanedObject) -> str:
    """Where the annotated diff of ``item`` is written, relative to the phase's artifacts."""
    return "diffs/" + item.ref.id.replace("/", "__") + ".diff"


def read_cleaned(cfg: Settings) -> list[Obj]:
    """Cleaned non-Secret objects written by phase 40 (re-exported on the fly when it has not run)."""
    path = phase_dir(cfg, PHASE) / CLEANED_FILE
    if not path.is_file():
        report = cleaned(cfg, open_source(cfg))
        return [c.cleaned for c in report.kept() if c.cleaned and c.cleaned.get("kind") != "Secret"]
    return [d for d in yaml.load_all(path.read_text(), Loader=_LOADER) if d]


class Export(PhaseRun):
    """State of the export notebook: the clean report of the selected source objects."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PHASE)
        self.source = open_source(cfg)
        self.report: CleanReport = cleaned(cfg, self.source)

    def overview(self) -> pd.DataFrame:
        """Objects exported, kept and dropped, per namespace and kind."""
        rows: Counter[tuple[str, str, str]] = Counter()
        for item in self.report.objects:
            rows[(item.ref.namespace or "(cluster)", item.ref.kind, "dropped" if item.dropped else "kept")] += 1
        frame = pd.DataFrame([{"namespace": ns, "kind": k, "fate": f, "objects": n}
                              for (ns, k, f), n in sorted(rows.items())])
        frame = frame.pivot_table(index=["namespace", "kind"], columns="fate", values="objects",
                                  aggfunc="sum", fill_value=0).reset_index()
        frame.columns.name = None
        for col in ("kept", "dropped"):
            if col not in frame:
                frame[col] = 0
        self.summary.update({"exported": len(self.report.objects), "kept": len(self.report.kept()),
                             "dropped": len(self.report.dropped())})
        return self.save_table("overview", frame[["namespace", "kind", "kept", "dropped"]])

    def rules(self) -> pd.DataFrame:
        """Each rule that fired: how often, and why it exists."""
        rows = [{"rule": rid, "fired": n, "title": RULES[rid].title if rid in RULES else "",
                 "reason": RULES[rid].reason if rid in RULES else ""}
                for rid, n in sorted(self.report.rule_counts().items())]
        return self.save_table("rules_fired", pd.DataFrame(rows))

    def dropped(self) -> pd.DataFrame:
        """Whole objects not migrated, with the rule and reason."""
        rows = []
        for item in self.report.dropped():
            drop = next((c for c in item.changes if c.action == "drop"), None)
            rows.append({"object": item.ref.id, "rule": drop.rule_id if drop else "",
                         "why": (drop.note if drop else "") or (RULES[drop.rule_id].reason if drop and
                                                                drop.rule_id in RULES else ""),
                         "diff": diff_name(item)})
        return self.save_table("dropped_objects", pd.DataFrame(rows), links={"diff": ""})

    def rules_chart(self) -> Any:
        """Fields removed or rewritten per rule (whole objects dropped count once each), largest first."""
        counts = self.report.rule_counts()
        if not counts:
            return pd.DataFrame([{"chart": "no rule fired"}])
        return figure(bar_figure(list(counts), [float(n) for n in counts.values()],
                                 title="Changes per cleaning rule (fields removed or rewritten, objects dropped)",
                                 xlabel="changes"))

    def warnings_table(self) -> pd.DataFrame:
        """Rewrites that need a human look (RWX → RWO, capacity…)."""
        rows = [{"object": r.id, "rule": c.rule_id, "path": c.path, "note": c.note}
                for r, c in self.report.warnings()]
        self.summary["review items"] = len(rows)  # to read, not failures: the run still completes
        self.notes += [f"{r['object']}: [{r['rule']}] {r['note']}" for r in rows]
        return self.save_table("cleaning_warnings", pd.DataFrame(rows))

    def ingress_annotations(self) -> pd.DataFrame:
        """Every ``nginx.ingress.kubernetes.io/*`` annotation of the source, classified for Traefik's NGINX provider."""
        rows = [{"ingress": item.ref.id, "annotation": v.annotation, "traefik": v.support, "middleware": v.middleware,
                 "note": v.note}
                for item in self.report.objects if item.ref.kind == "Ingress"
                for v in nginx_annotations(annotations_of(item.original))]
        counts = Counter(r["traefik"] for r in rows)
        self.summary["nginx annotations"] = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
        return self.save_table("nginx_annotations", pd.DataFrame(
            rows, columns=["ingress", "annotation", "traefik", "middleware", "note"]))

    def routes(self) -> pd.DataFrame:
        """OpenShift Routes kept: K3s does not serve them, so each gets the Ingress that does the same job."""
        services = [c.original for c in self.report.kept() if c.ref.kind == "Service"]
        rows = []
        for item in self.report.kept():
            if not is_route(item.original):
                continue
            ingress, notes = route_to_ingress(item.original, ingress_class=self.cfg.ingress_class, services=services)
            name = f"suggested/{item.ref.namespace}__{item.ref.name}.ingress.yaml"
            self.save_text(name, yaml.safe_dump(ingress, sort_keys=False))
            rows.append({"route": item.ref.id, "host": ingress["spec"]["rules"][0].get("host", ""),
                         "equivalent Ingress": name, "notes": "; ".join(notes)})
        if not rows:
            return pd.DataFrame([{"routes": "no OpenShift Route in the export"}])
        self.warnings.append(f"{len(rows)} OpenShift Route(s) kept, which K3s does not serve: apply the equivalent "
                             "Ingress of the routes table instead")
        return self.save_table("routes", pd.DataFrame(rows))

    def changes(self) -> pd.DataFrame:
        """Every field change on kept objects, with its rule ID (the full "why" table)."""
        rows = [{"object": item.ref.id, "rule": c.rule_id, "action": c.action, "path": c.path}
                for item in self.report.kept() for c in item.changes]
        frame = pd.DataFrame(rows)
        self.save_table("field_changes", frame)
        if frame.empty:
            return frame
        return frame.groupby(["rule", "action", "path"]).size().rename("objects").reset_index()

    def write(self) -> pd.DataFrame:
        """Write originals (redacted), cleaned objects, per-object diffs and the custody table."""
        kept = [c.cleaned for c in self.report.kept() if c.cleaned is not None]
        plain = sort_for_apply([o for o in kept if o.get("kind") != "Secret"])
        self.save_text(CLEANED_FILE, yamlout.dump_all(plain, sort_keys=True, width=120))
        self.save_text("cleaned/secrets-redacted.yaml",
                       yamlout.dump_all([redact(o) for o in kept if o.get("kind") == "Secret"], sort_keys=True))
        self.save_text("original/objects-redacted.yaml",
                       yamlout.dump_all([redact(c.original) for c in self.report.objects], sort_keys=True))
        custody: list[dict[str, Any]] = []
        for item in self.report.objects:
            name = diff_name(item).removeprefix("diffs/")
            self.save_text(f"diffs/{name}", annotated_diff(item))
            custody.append({"object": item.ref.id, "original_sha256": item.original_sha256,
                            "cleaned_sha256": sha256_of(item.cleaned) if item.cleaned else "",
                            "rules": " ".join(item.rule_ids), "diff": f"diffs/{name}"})
        self.summary["cleaned objects written"] = len(plain)
        return self.save_table("custody", pd.DataFrame(custody), links={"diff": ""})

    def save_snapshot(self) -> pd.DataFrame:
        """Save a live export as a snapshot folder, so a later run can work offline from it."""
        already = pd.DataFrame([{"snapshot": "the source already is a snapshot folder"}])
        if self.cfg.source_kind == "snapshot":  # (without importing the Kubernetes client for nothing)
            return already
        from k3smig_lib.backends.live_source import LiveSource, write_snapshot

        if not isinstance(self.source, LiveSource):
            return already
        folder = self.cfg.export_path()
        written = write_snapshot(self.source.list_objects(), folder, self.source.info())
        self.summary["snapshot saved"] = f"{folder} ({len(written)} files, mode 0600: it holds Secrets)"
        return pd.DataFrame([{"snapshot": str(folder), "files": len(written),
                              "note": "holds Secret values: keep it out of git and shared storage"}])

    def example_diff(self, object_id: str = "") -> str:
        """One annotated diff, to read in the report (the first Deployment when none is named)."""
        items = self.report.objects
        pick = next((i for i in items if i.ref.id == object_id), None) if object_id else None
        pick = pick or next((i for i in items if i.ref.kind == "Deployment" and not i.dropped), items[0])
        return annotated_diff(pick)


def start(cfg: Settings) -> Export:
    """Read and clean the source (phase 40)."""
    return Export(cfg)
