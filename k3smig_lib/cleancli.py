"""``k3smig clean EXPORT OUT``: the cleaner alone, for scripting and review outside the notebooks.

Reads any export folder the snapshot source reads, writes the cleaned manifests as the same kustomize
tree the directory target writes (Secrets sealed or without values) and a per-object rule report.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from k3smig_lib.backends.directory import DirectoryTarget
from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.core.clean import CleanOptions, clean_objects
from k3smig_lib.core.sealing import is_age_recipient, seal_secret, strip_values
from k3smig_lib.errors import ParameterError, TargetError


def clean_export(export: Path, out: Path, *, age_recipient: str = "", storage_class: str = "local-path",
                 ingress_class: str = "nginx") -> str:
    """Clean every object under ``export`` into ``out``; return a one-line summary.

    Raises:
        ParameterError: the recipient is not an age public key.
        TargetError: ``out`` exists and is not empty (nothing is overwritten).
        SourceError: the export cannot be read.
    """
    if age_recipient and not is_age_recipient(age_recipient):
        raise ParameterError(f"{age_recipient!r} is not an age recipient", fix="give an 'age1…' public key")
    if out.exists() and any(out.iterdir()):
        raise TargetError(f"output folder {out} is not empty", fix="give a new or empty folder")
    report = clean_objects(read_export(export), CleanOptions(storage_class=storage_class, ingress_class=ingress_class))
    seal = partial(seal_secret, recipient=age_recipient) if age_recipient else strip_values
    kept = [c.cleaned for c in report.kept() if c.cleaned is not None]
    DirectoryTarget(out, seal=seal).apply(kept, dry_run=False, existing="fail")
    records: list[dict[str, Any]] = [
        {"object": c.ref.id, "original_sha256": c.original_sha256, "dropped": c.dropped, "rules": c.rule_ids,
         "changes": [{"rule": x.rule_id, "action": x.action, "path": x.path, "note": x.note} for x in c.changes]}
        for c in report.objects
    ]
    (out / "report.json").write_text(json.dumps(records, indent=2, sort_keys=True) + "\n")
    pd.DataFrame([{"object": r["object"], "dropped": r["dropped"], "rules": " ".join(r["rules"])} for r in records]
                 ).to_csv(out / "report.csv", index=False)
    secrets = "sealed for the recipient" if age_recipient else "written without values"
    return (f"{len(report.objects)} objects read, {len(kept)} kept, {len(report.dropped())} dropped; "
            f"Secrets {secrets}; manifests in {out / 'manifests'}, rule report in {out / 'report.json'}")
