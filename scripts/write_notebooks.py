"""Write the ten phase notebooks from one specification (run: python scripts/write_notebooks.py).

The parameters cell of every notebook is generated from ``k3smig_lib.core.config.Settings`` — type,
default and help text — so notebooks, parameters files and the settings model cannot drift apart.
Cells hold one library call each (docs/architecture.md); edit the spec here, never the notebooks by hand.
"""

from __future__ import annotations

import ast
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any

import nbformat
from papermill.translators import PythonTranslator
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from k3smig_lib.core.config import Settings  # noqa: E402

SOURCE = ["source_kind", "source_snapshot", "source_kubeconfig", "source_context", "namespaces", "exclude_namespaces"]
EXPORT = ["export_dir"]
TARGET = ["target_kind", "target_dir", "target_kubeconfig", "target_context", "age_recipient"]
CLEAN = ["storage_class", "ingress_class", "registry_rewrites", "registry_pull_secret", "keep_helm_releases",
         "ingress_address", "ingress_controller"]
VM = ["vm_name", "zone", "instance_type", "disk_gb", "admin_cidr", "k3s_version", "domain", "acme_email",
      "letsencrypt_env", "txt_owner_id", "ingress_controller", "server_count", "agent_count", "lb_enabled",
      "backup_bucket", "backup_retention"]

SPEC: dict[str, dict[str, object]] = {
    "00_preflight": {
        "title": "00 · Preflight",
        "purpose": "Check everything that can be known before any write: tools, credentials (names only), "
                   "both ends reachable and distinct, the K3s compatibility lint and the capacity of the VM.",
        "pre": "A parameters file (or the defaults: the bundled example cluster into a local folder).",
        "changes": "Nothing. Preflight only reads.",
        "rollback": "Nothing to roll back.",
        "params": ["environment", "apply", "provision", "run_dir", *SOURCE, *TARGET, *CLEAN, "manage_dns",
                   "require_promtool",
                   "vm_cpu", "vm_memory_gib", "disk_gb"],
        "start": "phase = k3smig.preflight.start(cfg)",
        "cells": [
            ("Tools on this machine, and which phase needs each.", "phase.tools()"),
            ("Credential variables: **present or not — values are never read into this report**.",
             "phase.credentials()"),
            ("Source and target: where they are, versions, identities. A target equal to the source is refused.",
             "phase.endpoints()"),
            ("Namespaces selected for migration.", "phase.namespaces()"),
            ("Permissions on each live cluster (SelfSubjectAccessReview), and whether the target is K3s.",
             "phase.permissions()"),
            ("K3s compatibility lint: what will not work as is on K3s, and how the run fixes it.",
             "phase.compatibility()"),
            ("Capacity of the planned VM against the workloads' requests and the volume sizes.", "phase.capacity()"),
            ("The same, as a chart: the share of the VM the migrated workloads request.", "phase.capacity_chart()"),
            ("Outcome of the preflight (a blocking finding stops the run here).", "phase.finish()"),
        ],
    },
    "10_provision_infrastructure": {
        "title": "10 · Provision the Scaleway VM",
        "purpose": "Render the Terraform/OpenTofu variables from the parameters, plan the VM (instance, flexible "
                   "IP, security group, SSH key) — or the cluster past one VM (`server_count`, `agent_count`, private "
                   "network, `lb_enabled`) — and, only with `provision: true`, apply it.",
        "pre": "Preflight passed. For a real plan: `tofu` or `terraform` on PATH and `SCW_*` variables in the "
               "environment (.envrc).",
        "changes": "With `provision: true`: creates the Scaleway resources. Otherwise nothing.",
        "rollback": "`tofu destroy` in `infrastructure/terraform/envs/scaleway` (see README).",
        "params": ["environment", "provision", "run_dir", *VM],
        "start": "phase = k3smig.provision.start_provision(cfg)",
        "cells": [
            ("Terraform variables rendered from the parameters.", "phase.variables()"),
            ("Exactly the commands this phase runs (or would run).", "phase.commands()"),
            ("Plan summary: adds, changes and destroys by resource.", "phase.plan()"),
            ("Apply (only with `provision: true`) and the outputs.", "phase.apply()"),
            ("The Ansible inventory phase 20 reads, rendered from the outputs.", "phase.inventory()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "20_configure_k3s": {
        "title": "20 · Configure K3s and the platform",
        "purpose": "Install K3s (its bundled Traefik with the NGINX provider, or ingress-nginx with Traefik "
                   "disabled), Helm, cert-manager and external-dns on the VM with Ansible, then the day-2 layer: K3s "
                   "upgrade Plans, backups to `backup_bucket`, Longhorn when `storage_class` is `longhorn`; check "
                   "mode unless `provision: true`.",
        "pre": "Phase 10 produced an inventory (or placeholders are shown).",
        "changes": "With `provision: true`: packages, the K3s service and Helm releases on the VM.",
        "rollback": "Each role has an `absent` state (`<role>_state: absent`).",
        "params": ["environment", "provision", "run_dir", *VM],
        "start": "phase = k3smig.configure_k3s.start_configure(cfg)",
        "cells": [
            ("Inventory from phase 10.", "phase.inventory()"),
            ("Roles of `ansible/site.yml`, in order.", "phase.roles()"),
            ("The command this phase runs.", "phase.commands()"),
            ("Per-host recap from ansible-runner events.", "phase.run()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "30_inventory_source": {
        "title": "30 · Inventory of the source",
        "purpose": "Tables of what runs on the source, what it stores and what will not fit K3s as is. "
                   "Secrets appear as metadata only.",
        "pre": "A readable source (snapshot folder or cluster).",
        "changes": "Nothing.",
        "rollback": "Nothing to roll back.",
        "params": ["environment", "run_dir", *SOURCE, *CLEAN, "disk_gb", "instance_type", "vm_cpu", "vm_memory_gib"],
        "start": "phase = k3smig.inventory.start(cfg)",
        "cells": [
            ("Where this inventory comes from.", "phase.cluster()"),
            ("Objects per namespace and kind.", "phase.objects_by_kind()"),
            ("The same, as a chart.", "phase.chart()"),
            ("Explore by namespace and kind (a filter widget in JupyterLab).", "phase.explore()"),
            ("Workloads: images, file owners (`runAsUser`/`fsGroup`), mounted claims, node pinning.",
             "phase.workloads()"),
            ("Services.", "phase.services()"),
            ("Ingresses.", "phase.ingresses()"),
            ("Storage: claims, classes, sizes, access modes, and whether their data was exported.",
             "phase.storage()"),
            ("Secrets — names, types and key names only.", "phase.secrets()"),
            ("CRDs and RBAC.", "phase.crds_and_rbac()"),
            ("Risk table: the K3s compatibility lint.", "phase.risks()"),
            ("Sizing: do the workloads' requests fit one VM of `instance_type` with headroom? If not, the node "
             "count and type that would (`server_count`, `agent_count`, `instance_type`).", "phase.sizing()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "40_export_manifests": {
        "title": "40 · Export and clean the manifests",
        "purpose": "Keep every object as exported (hashed), clean it with the rule engine "
                   "(docs/cleaning-rules.md), and show why each object or field was removed or rewritten.",
        "pre": "A readable source.",
        "changes": "Nothing outside the run folder.",
        "rollback": "Nothing to roll back.",
        "params": ["environment", "run_dir", *SOURCE, *EXPORT, *CLEAN],
        "start": "phase = k3smig.export.start(cfg)",
        "cells": [
            ("Objects exported, kept and dropped per namespace and kind.", "phase.overview()"),
            ("Rules that fired, how often, and why each rule exists.", "phase.rules()"),
            ("Changes per rule, as a chart.", "phase.rules_chart()"),
            ("Whole objects not migrated, with the rule and the reason.", "phase.dropped()"),
            ("Field changes on kept objects, grouped by rule.", "phase.changes()"),
            ("Rewrites that need a human look.", "phase.warnings_table()"),
            ("Every `nginx.ingress.kubernetes.io/*` annotation of the source: supported by Traefik's NGINX provider, "
             "needs a Traefik middleware (which), or unsupported.", "phase.ingress_annotations()"),
            ("OpenShift Routes: K3s does not serve them; the equivalent Ingress to apply instead.", "phase.routes()"),
            ("Originals (Secrets redacted), cleaned objects, per-object diffs and the chain-of-custody table.",
             "phase.write()"),
            ("One annotated diff, as an example.", "k3smig.show.code(phase.example_diff(), 'diff')"),
            ("A live export is also saved as a snapshot folder (outside the run: it holds Secrets).",
             "phase.save_snapshot()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "50_migrate_secrets": {
        "title": "50 · Migrate the Secrets",
        "purpose": "Move the Secrets the cleaner keeps (skip set shown with reasons), build the registry pull "
                   "Secret and the external-dns credentials from the environment, and prove equality by keyed "
                   "fingerprints. No value is ever shown.",
        "pre": "Phase 40 (or it is re-computed).",
        "changes": "With `apply: true`: Secrets on the target (sealed with SOPS/age in a directory target).",
        "rollback": "Delete the Secrets listed in the apply table from the target.",
        "params": ["environment", "apply", "run_dir", *SOURCE, *TARGET, "existing", *CLEAN, "registry_server",
                   "manage_dns"],
        "start": "phase = k3smig.secrets.start(cfg)",
        "cells": [
            ("Credential variables (names only).", "phase.credentials()"),
            ("Source ledger: name, type, key, length, keyed HMAC fingerprint; migrated or skipped with the reason.",
             "phase.ledger()"),
            ("Platform Secrets built from environment variables.", "phase.platform_secrets()"),
            ("Apply (dry run unless `apply: true`).", "phase.apply()"),
            ("Target fingerprints compared with the source, key by key.", "phase.verify()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "60_deploy_applications": {
        "title": "60 · Deploy the applications",
        "purpose": "Apply the cleaned objects in apply order. Workloads that mount volumes are held at 0 "
                   "replicas until phase 70 proves their data.",
        "pre": "Phases 40 and 50.",
        "changes": "With `apply: true`: every cleaned object on the target.",
        "rollback": "Delete the applied objects (apply table), in reverse order.",
        "params": ["environment", "apply", "run_dir", *SOURCE, *TARGET, "existing", *CLEAN],
        "start": "phase = k3smig.deploy.start(cfg)",
        "cells": [
            ("Plan: what applying does, object by object, in apply order.", "phase.plan()"),
            ("Plan per kind.", "phase.plan_summary()"),
            ("Workloads held at 0 replicas until their data is verified.", "phase.held()"),
            ("Apply (only with `apply: true` and no conflict).", "phase.apply()"),
            ("Live target: the workloads that run now become Ready.", "phase.readiness()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "70_migrate_data": {
        "title": "70 · Migrate the volume data",
        "purpose": "Move every volume as a tar stream through one port — helper pods and `pods/exec` on a live "
                   "cluster, archives and folders offline — with owners derived from the target pod spec, and prove "
                   "that nothing was lost: per-file manifests read on both sides from disk must be equal, and the "
                   "applications' own data must check out.",
        "pre": "Phase 60 (workloads that mount volumes held at 0 replicas on the target).",
        "changes": "With `apply: true`: helper pods on both clusters (deleted at the end); on a live source the "
                   "workloads that write the volumes are scaled to 0 (replicas recorded on them); the target volumes; "
                   "then held workloads are released.",
        "rollback": "Scale the source workloads back to the count in their `k3smig.io/pre-quiesce-replicas` "
                    "annotation; target workloads stay at 0 replicas until their volumes are proven.",
        "params": ["environment", "apply", "run_dir", *SOURCE, *TARGET, *CLEAN, "existing", "require_promtool",
                   "quiesce", "include_loki", "volume_helper_image"],
        "start": "phase = k3smig.data.start(cfg)",
        "cells": [
            ("Volumes to move.", "phase.volume_table()"),
            ("Source manifests, hashed in place (in a helper pod, or from the archive): nothing is copied yet.",
             "phase.source_manifests_table()"),
            ("Volume sizes, as a chart.", "phase.volume_chart()"),
            ("Ownership plan: owners seen on the source, the target pod's identity, the resulting action, and who "
             "writes the target volume (root only when the plan needs it).", "phase.ownership()"),
            ("Capacity: bytes per volume against the target claim and the free space — refused before any write.",
             "phase.capacity()"),
            ("First pass while the application runs (live source): the final pass then has little to send.",
             "phase.first_pass()"),
            ("Quiesce: the source workloads that write the volumes are scaled to 0, their replicas recorded on them.",
             "phase.quiesce()"),
            ("Source databases must be intact before the final copy.", "phase.source_checks()"),
            ("Final pass: only what differs is sent (everything the first time, nothing on a re-run).",
             "phase.transfer()"),
            ("Target re-read from its own disk and compared entry by entry (path, type, size, mode, owner, link, "
             "sha256); a live source is hashed again to catch writes during the copy.", "phase.verify()"),
            ("Application checks on both sides: SQLite integrity and row counts, Grafana dashboards and secret_key, "
             "Vaultwarden keys, attachments and sends, Prometheus blocks and configuration.", "phase.app_checks()"),
            ("Held workloads released once every volume they mount is proven; readiness and downtime on a live "
             "target.", "phase.release()"),
            ("Who read and wrote each volume, and why.", "phase.helpers()"),
            ("Outcome of the phase (helper pods are deleted first).", "phase.finish()"),
        ],
    },
    "80_configure_network": {
        "title": "80 · Ingress, certificates, DNS and cutover",
        "purpose": "Serve the migrated Ingresses with K3s's Traefik (NGINX provider) or ingress-nginx; classify "
                   "every "
                   "`nginx.ingress.kubernetes.io/*` annotation; keep every certificate (ACME account keys, TLS "
                   "Secrets, issuers, Certificates, in that order) and predict any re-issue; read DNS, probe the "
                   "target over HTTPS, record the go/no-go, and on go hand the DNS records from the source's "
                   "external-dns to the target's.",
        "pre": "Phases 40–70. For the cutover: a live target, `dns_server`, the source's and target's external-dns.",
        "changes": "With `apply: true` and `cutover: true`, on go only: the source's GitLab Runner and external-dns "
                   "scaled to 0 (replicas recorded on them), the target's runner released, the target's "
                   "external-dns switched to `sync` with the source's records handed over; DNS answers the VM "
                   "address.",
        "rollback": "`k3smig rollback runs/<run-id>`: source workloads and external-dns back to their recorded "
                    "replicas, records handed back, target external-dns back to `upsert-only`; a rollback report is "
                    "written into the run.",
        "params": ["environment", "apply", "run_dir", *SOURCE, *TARGET, *CLEAN, "domain",
                   "txt_owner_id", "cutover", "source_txt_owner_id", "external_dns",
                   "dns_server", "dns_tsig_keyname", "cutover_ttl", "dns_wait_seconds", "probe_address",
                   "source_probe_address", "probe_paths", "as_of"],
        "start": "phase = k3smig.network.start(cfg)",
        "cells": [
            ("Ingresses on the target and the controller that serves them.", "phase.ingress_table()"),
            ("Every `nginx.ingress.kubernetes.io/*` annotation: supported by Traefik's NGINX provider, needs a "
             "Traefik middleware (which), or unsupported.", "phase.annotations()"),
            ("cert-manager objects in apply order: ACME account keys, TLS Secrets, issuers, Certificates.",
             "phase.migration_order()"),
            ("Certificates: kept or re-issued (cert-manager's triggers), serial, expiry; Let's Encrypt's weekly "
             "limit.", "phase.certificates()"),
            ("DNS: current answers, TTLs and owners; what the cutover changes; the TTL plan.", "phase.dns_plan()"),
            ("HTTPS probes with SNI and Host through the target ingress, compared with the source.",
             "phase.probes()"),
            ("Go/no-go: every check and the decision.", "phase.go_no_go()"),
            ("Cutover (only on go, with `apply: true` and `cutover: true`): every step.", "phase.cutover()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
    "90_validate_migration": {
        "title": "90 · Validate the migration",
        "purpose": "Compare source and target again — objects, secret fingerprints, volume manifests re-hashed "
                   "from disk, application checks — and give one verdict.",
        "pre": "Phases 00–80.",
        "changes": "Nothing.",
        "rollback": "Nothing to roll back.",
        "params": ["environment", "apply", "run_dir", *SOURCE, *TARGET, *CLEAN],
        "start": "phase = k3smig.validate.start(cfg)",
        "cells": [
            ("Objects per namespace and kind; each difference explained by rule IDs.", "phase.objects()"),
            ("Live target health: workloads ready, claims bound, ingresses.", "phase.health()"),
            ("Secret fingerprints, source against target.", "phase.secrets()"),
            ("Volumes re-hashed from disk against the source manifests.", "phase.volumes()"),
            ("Application checks.", "phase.apps()"),
            ("Every earlier phase.", "phase.phases()"),
            ("Verdict.", "phase.verdict()"),
            ("Outcome of the phase.", "phase.finish()"),
        ],
    },
}


def python_literal(value: object) -> str:
    """The Python source of a parameter default: ``ast.literal_eval`` of it gives ``value`` back.

    Laid out like JSON (double quotes, ``", "`` and ``": "`` between items), as the cells always were, but
    Python: ``True``/``False``/``None``, and strings escaped character by character, so a default that
    contains the words ``false``, ``true`` or ``null`` stays the string it is.

    Raises:
        TypeError: a value papermill could not inject either (a set, a tuple, a path, an enum…).
        ValueError: a float that is not finite (``inf`` or ``nan`` have no literal).
    """
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"default {value!r} has no Python literal: use a finite number or an empty string")
        return repr(value)
    if isinstance(value, str):
        return _string_literal(value)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{python_literal(k)}: {python_literal(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"default {value!r} ({type(value).__name__}) cannot be written into a parameters cell: "
                    "use None, a bool, number, string, or a list or dict of those")


def _string_literal(text: str) -> str:
    """A double-quoted Python string literal of ``text``; what is not printable is escaped as ``repr`` does."""
    out = ['"']
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # line breaks (also U+2028), tabs, control characters
            out.append(repr(char)[1:-1])
    out.append('"')
    return "".join(out)


def python_annotation(annotation: Any) -> str:
    """An annotation a parameters cell can hold: valid Python with no import, and in papermill's grammar.

    A notebook cell has no ``typing`` import (module-level annotations are evaluated), and papermill's
    parameter pattern takes only names, brackets and commas. So ``Literal["a", "b"]`` is written as the type
    of its values (``str``), ``X | None`` and ``Optional[X]`` as ``X`` (the default says ``None``), and
    ``list[str]``/``dict[str, str]`` as ``list``/``dict``, as the cells always were.

    Raises:
        ValueError: an annotation with no such form (a union of two types, a literal of mixed types…).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        kinds = {type(a) for a in args}
        if len(kinds) == 1 and kinds <= {str, int, float, bool}:
            return kinds.pop().__name__
    elif origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return python_annotation(rest[0])
    elif origin in (list, dict):
        return origin.__name__
    elif annotation in (str, int, float, bool, list, dict):
        return str(annotation.__name__)
    raise ValueError(f"annotation {annotation!r} has no form a notebook parameters cell can hold: use str, int, "
                     "float, bool, a Literal of one type, list[...], dict[...], or one of them | None")


def parameters_cell(names: list[str], model: type[BaseModel] = Settings) -> str:
    """One typed line with a help comment per parameter, defaults taken from ``model`` (Settings).

    The cell is checked the way it is used: run as Python it must give every default back, and papermill must
    read every name, default and help text from it.

    Raises:
        ValueError: a field whose default, annotation or help text the cell cannot carry, with the fix.
    """
    lines, defaults = [], {}
    for name in names:
        field = model.model_fields[name]
        defaults[name] = field.get_default(call_default_factory=True)
        help_text = field.description or ""
        if "\n" in help_text or "\r" in help_text:
            raise ValueError(f"{name}: the description spans lines; a help comment is one line")
        try:
            lines.append(f"{name}: {python_annotation(field.annotation)} = {python_literal(defaults[name])}"
                         f"  # {help_text}")
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name}: {err}") from None
    source = "\n".join(lines)
    namespace: dict[str, Any] = {}
    exec(compile(source, "<parameters cell>", "exec"), namespace)  # noqa: S102 - our own generated source
    read = {p.name: p for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(source))}
    for line, name in zip(lines, names, strict=True):
        if namespace[name] != defaults[name] or type(namespace[name]) is not type(defaults[name]):
            raise ValueError(f"{name}: {line!r} does not give the default {defaults[name]!r} back")
        seen = read.get(name)
        help_text = model.model_fields[name].description or ""
        if seen is None or not _reads_as(seen.default, defaults[name]) or seen.help != help_text.strip():
            raise ValueError(f"{name}: papermill does not read {line!r} as written (an '=' or '#' in the default "
                             "or the description breaks its parameter pattern): change the description or the "
                             "default in k3smig_lib/core/config.py")
    return source


def _reads_as(source: str, value: object) -> bool:
    try:
        return bool(ast.literal_eval(source) == value)
    except (ValueError, SyntaxError):
        return False


def notebook(name: str, spec: dict[str, object]) -> nbformat.NotebookNode:
    """Build one phase notebook."""
    params: list[str] = spec["params"]  # type: ignore[assignment]
    header = (f"# {spec['title']}\n\n**Purpose.** {spec['purpose']}\n\n**Preconditions.** {spec['pre']}\n\n"
              f"**What it changes.** {spec['changes']}\n\n**Rollback.** {spec['rollback']}\n\n"
              "Nothing is written to the target unless the parameters say `apply: true`; the header of the report "
              "says which mode this run used.")
    cells = [nbformat.v4.new_markdown_cell(header)]
    pcell = nbformat.v4.new_code_cell(parameters_cell(params))
    pcell.metadata["tags"] = ["parameters"]
    cells.append(pcell)
    args = "".join(f"    {p}={p},\n" for p in params)
    cells.append(nbformat.v4.new_code_cell(f"import k3smig_lib as k3smig\n\ncfg = k3smig.load_config(\n{args})"))
    cells.append(nbformat.v4.new_code_cell(str(spec["start"])))
    for text, call in spec["cells"]:  # type: ignore[attr-defined]
        cells.append(nbformat.v4.new_markdown_cell(text))
        cells.append(nbformat.v4.new_code_cell(call))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    return nb


def main() -> None:
    """Write every notebook under notebooks/."""
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for name, spec in SPEC.items():
        nbformat.write(notebook(name, spec), str(out / f"{name}.ipynb"))
    print(f"wrote {len(SPEC)} notebooks to {out}")


if __name__ == "__main__":
    main()
