"""``k3smig clean EXPORT OUT``: the cleaner alone, for scripting and review outside the notebooks.

Reads any export folder the snapshot source reads, writes the cleaned manifests as the same kustomize
tree the directory target writes (Secrets sealed or without values) and a per-object rule report.
Everything is written into a staging folder next to ``OUT`` that is renamed onto ``OUT`` only when
complete: a failure leaves no half-written tree that would block the next attempt, and the staging
folder of a killed run is removed by the next one. An export whose every object is dropped still
gives a valid (empty) tree and its report.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from k3smig_lib.backends.directory import DirectoryTarget
from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.core.clean import CleanedObject, CleanOptions, clean_objects
from k3smig_lib.core.clean.routes import is_route, route_to_ingress
from k3smig_lib.core.fsafe import STAGING_MARK, atomic_write, remove_leftovers
from k3smig_lib.core.objects import Obj
from k3smig_lib.core.sealing import is_age_recipient, seal_secret, strip_values
from k3smig_lib.errors import ParameterError, TargetError


def _check_out(out: Path) -> None:
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise TargetError(f"output {out} exists and is not a folder", fix="give a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        raise TargetError(f"output folder {out} is not empty", fix="give a new or empty folder")


def _record(item: CleanedObject, services: list[Obj], ingress_class: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "object": item.ref.id, "apiVersion": item.ref.api_version, "original_sha256": item.original_sha256,
        "dropped": item.dropped, "rules": item.rule_ids,
        "changes": [{"rule": x.rule_id, "action": x.action, "path": x.path, "note": x.note} for x in item.changes],
    }
    if not item.dropped and is_route(item.original):
        ingress, notes = route_to_ingress(item.original, ingress_class=ingress_class, services=services)
        record["warnings"] = ["K3s does not serve route.openshift.io: apply equivalent_ingress instead", *notes]
        record["equivalent_ingress"] = ingress
    return record


def clean_export(export: Path, out: Path, *, age_recipient: str = "", storage_class: str = "local-path",
                 ingress_class: str = "nginx") -> str:
    """Clean every object under ``export`` into ``out``; return a one-line summary.

    Raises:
        ParameterError: the recipient is not an age public key.
        TargetError: ``out`` exists and is not an empty folder (nothing is overwritten).
        SourceError: the export cannot be read (invalid names, YAML, base64…); nothing is written.
    """
    if age_recipient and not is_age_recipient(age_recipient):
        raise ParameterError(f"{age_recipient!r} is not an age recipient", fix="give an 'age1…' public key")
    out = Path(os.path.abspath(out))
    _check_out(out)
    objects = read_export(export)
    report = clean_objects(objects, CleanOptions(storage_class=storage_class, ingress_class=ingress_class))
    seal = partial(seal_secret, recipient=age_recipient) if age_recipient else strip_values
    kept = [c.cleaned for c in report.kept() if c.cleaned is not None]
    services = [o for o in objects if o.get("kind") == "Service"]
    records = [_record(c, services, ingress_class) for c in report.objects]
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, max_depth=1)  # staging folders of killed runs
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}{os.getpid()}-", dir=out.parent))
    try:
        DirectoryTarget(staging, seal=seal).apply(kept, dry_run=False, existing="fail")
        atomic_write(staging, "report.json", json.dumps(records, indent=2, sort_keys=True) + "\n")
        table = pd.DataFrame([{"object": r["object"], "apiVersion": r["apiVersion"], "dropped": r["dropped"],
                               "rules": " ".join(r["rules"])} for r in records],
                             columns=["object", "apiVersion", "dropped", "rules"])
        atomic_write(staging, "report.csv", table.to_csv(index=False))
        _check_out(out)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    secrets = "sealed for the recipient" if age_recipient else "written without values"
    routes = sum(1 for r in records if "equivalent_ingress" in r)
    route_note = (f"; {routes} OpenShift Route(s) kept, which K3s does not serve: the equivalent Ingress is in "
                  "report.json") if routes else ""
    return (f"{len(report.objects)} objects read, {len(kept)} kept, {len(report.dropped())} dropped; "
            f"Secrets {secrets}{route_note}; manifests in {out / 'manifests'}, rule report in {out / 'report.json'}")
