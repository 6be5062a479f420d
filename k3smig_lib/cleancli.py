"""``k3smig clean EXPORT OUT``: the cleaner alone, for scripting and review outside the notebooks.

Reads any export folder the snapshot source reads, writes the cleaned manifests as the same kustomize
tree the directory target writes and a per-object rule report. A Secret value is never written in clear:
Secrets are sealed for ``--age-recipient``, or, without one, written as kustomize secret generators
whose values the user puts in files under ``manifests/secret-values/`` (ignored by git): a Secret with
empty values would, once applied, replace a working credential, while a generator whose files are
missing makes ``kubectl apply -k`` refuse. The command names every such Secret and how to seal them
instead (:func:`unsealed_notice`), and its report marks each one.
Everything is written into a staging folder next to ``OUT`` that is renamed onto ``OUT`` only when
complete: a failure leaves no half-written tree that would block the next attempt, and the staging
folder of a killed run is removed by the next one. An export whose every object is dropped still
gives a valid (empty) tree and its report.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from k3smig_lib.backends.directory import DirectoryTarget
from k3smig_lib.backends.snapshot import iter_export
from k3smig_lib.core.clean import CleanedObject, CleanOptions
from k3smig_lib.core.clean.routes import is_route, route_to_ingress
from k3smig_lib.core.clean.stream import clean_stream
from k3smig_lib.core.fsafe import STAGING_MARK, remove_leftovers, sync_staged
from k3smig_lib.core.objects import Obj, get_path
from k3smig_lib.core.sealing import SECRET_VALUES_DIR, is_age_recipient, seal_secret, secret_generator
from k3smig_lib.core.yamlio import MAX_FILE_BYTES
from k3smig_lib.errors import ParameterError, TargetError

if TYPE_CHECKING:
    from k3smig_lib.backends.live_export import LiveSpool
    from k3smig_lib.backends.live_source import LiveSource

#: Why a Secret of ``k3smig clean`` is a secret generator (its ``k3smig.io/values-omitted`` annotation and
#: report warning): without a recipient no value may be written, and an empty Secret must never be applied.
NO_RECIPIENT = ("written as a kustomize secretGenerator without its values (no --age-recipient given to k3smig "
                "clean): put each value in the file its `files` entry names, under manifests/secret-values/ "
                "(ignored by git), or clean again with --age-recipient age1… to seal them")
#: Secrets named one by one in the notice; the rest are counted (report.json marks every one).
NOTICE_NAMES = 20


@dataclass(frozen=True)
class CleanResult:
    """What ``k3smig clean`` did: the one-line summary, and the Secrets written without their data."""

    summary: str
    unsealed: list[str] = field(default_factory=list)


def unsealed_notice(unsealed: list[str], export: Path | str, out: Path) -> str:
    """The warning for Secrets written without their data: which ones, and the command that seals them.

    ``export`` is what the command read: the export folder, or ``--context CONTEXT`` for a live cluster.
    """
    shown = ", ".join(unsealed[:NOTICE_NAMES]) + (f" and {len(unsealed) - NOTICE_NAMES} more"
                                                   if len(unsealed) > NOTICE_NAMES else "")
    return (f"warning: no --age-recipient given, so {len(unsealed)} Secret(s) were written as kustomize "
            f"secretGenerator entries without their values: {shown} (report.json marks each). `kubectl apply -k "
            f"{out / 'manifests'}` refuses until each value is in its file under "
            f"{out / 'manifests' / SECRET_VALUES_DIR}/NAMESPACE/NAME/KEY (ignored by git). To seal them instead: "
            f"k3smig clean {export} NEW_OUT --age-recipient age1… (your age public key: `age-keygen -y KEY_FILE`).")


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


_ESCAPE = getattr(json.encoder, "encode_basestring_ascii")  # noqa: B009 - the C string encoder


def _pretty(value: Any, pad: str = "\n") -> str:
    """``json.dumps(value, indent=2, sort_keys=True)`` for JSON-like values, with C-encoded strings.

    ``indent`` makes ``json`` fall back to its pure-Python encoder: 10,000 records took seconds.
    """
    if isinstance(value, str):
        return str(_ESCAPE(value))
    if isinstance(value, dict) and value:
        inner = pad + "  "
        pairs = (f"{inner}{_ESCAPE(str(k))}: {_pretty(value[k], inner)}" for k in sorted(value))
        return "{" + ",".join(pairs) + pad + "}"
    if isinstance(value, list) and value:
        inner = pad + "  "
        return "[" + ",".join(inner + _pretty(v, inner) for v in value) + pad + "]"
    return json.dumps(value, sort_keys=True)


class _Reports:
    """``report.json`` and ``report.csv`` written one record at a time, byte for byte what a whole dump writes."""

    def __init__(self, folder: Path) -> None:
        self.json = (folder / "report.json").open("w", encoding="utf-8")
        self.csv_file = (folder / "report.csv").open("w", encoding="utf-8", newline="")
        self.csv = csv.writer(self.csv_file, lineterminator="\n")
        self.csv.writerow(["object", "apiVersion", "dropped", "rules"])
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        self.json.write(("[\n  " if not self.count else ",\n  ") + _pretty(record, "\n  "))
        self.csv.writerow([record["object"], record["apiVersion"], record["dropped"], " ".join(record["rules"])])
        self.count += 1

    def close(self) -> None:
        self.json.write("\n]\n" if self.count else "[]\n")
        self.json.close()
        self.csv_file.close()


def _slim_service(obj: Obj) -> Obj:
    """What a Route's equivalent Ingress needs of a Service: its identity and ports."""
    meta = obj.get("metadata") or {}
    return {"kind": "Service", "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": {"ports": get_path(obj, "spec.ports", []) or []}}


def clean_export(export: Path, out: Path, *, age_recipient: str = "", storage_class: str = "local-path",
                 ingress_class: str = "nginx", max_file_bytes: int = MAX_FILE_BYTES) -> CleanResult:
    """Clean every object under ``export`` into ``out``; return a one-line summary and the unsealed Secrets.

    Without ``age_recipient`` every Secret is written without its data (never in clear) and is named in
    :attr:`CleanResult.unsealed` (``namespace/name``, in the order written).

    The export streams through (:func:`~k3smig_lib.backends.snapshot.iter_export`,
    :func:`~k3smig_lib.core.clean.stream.clean_stream`): each object is written as soon as it is
    cleaned, and memory holds the cross-object facts, never the export.

    Raises:
        ParameterError: the recipient is not an age public key.
        TargetError: ``out`` exists and is not an empty folder (nothing is overwritten).
        SourceError: the export cannot be read (invalid names, YAML, base64…); nothing is written.
        LimitError: a file is larger than ``max_file_bytes``, or a document is over a bound.
    """
    return _clean_into(lambda: iter_export(export, file_limit=max_file_bytes), out, age_recipient=age_recipient,
                       storage_class=storage_class, ingress_class=ingress_class)


def clean_live(source: LiveSource, out: Path, *, snapshot: Path | None = None, age_recipient: str = "",
               storage_class: str = "local-path", ingress_class: str = "nginx",
               watch: Callable[[LiveSpool], None] | None = None) -> CleanResult:
    """Export a live cluster page by page and clean it into ``out``; return the summary and unsealed Secrets.

    Each list page is spooled to disk as it arrives (:class:`~k3smig_lib.backends.live_export.LiveSpool`),
    so memory holds a few pages, an index entry per object and the cleaner's cross-object facts. The
    objects then go through the same streaming cleaner as :func:`clean_export`, in the order a snapshot
    folder is read: ``out`` is byte for byte what ``k3smig clean`` of the snapshot gives.

    Args:
        source: the live cluster (its ``page_size``, ``workers`` and ``on_page`` apply).
        out: output folder (created; must be new or empty).
        snapshot: also write the raw export there as a snapshot folder (holds Secret values, 0600).
        age_recipient: seal Secrets for this age recipient (else they become secret generators without values).
        storage_class: the target's StorageClass.
        ingress_class: the target's IngressClass.
        watch: given the spool before it fills (progress lines and tests read ``spool.spooled``).

    Raises:
        ParameterError: the recipient is not an age public key.
        TargetError: ``out`` exists and is not an empty folder.
        SourceError: a list failed for good, or an object's name is invalid; nothing is written.
    """
    from k3smig_lib.backends.live_export import LiveSpool

    if age_recipient and not is_age_recipient(age_recipient):
        raise ParameterError(f"{age_recipient!r} is not an age recipient", fix="give an 'age1…' public key")
    _check_out(Path(os.path.abspath(out)))
    with LiveSpool(source) as spool:
        if watch is not None:
            watch(spool)
        spool.fill()
        info = source.info() if snapshot is not None else None
        return _clean_into(lambda: spool.objects(snapshot, info), out, age_recipient=age_recipient,
                           storage_class=storage_class, ingress_class=ingress_class)


def _clean_into(objects: Callable[[], Iterator[tuple[Obj, str]]], out: Path, *, age_recipient: str,
                storage_class: str, ingress_class: str) -> CleanResult:
    if age_recipient and not is_age_recipient(age_recipient):
        raise ParameterError(f"{age_recipient!r} is not an age recipient", fix="give an 'age1…' public key")
    out = Path(os.path.abspath(out))
    _check_out(out)
    seal = partial(seal_secret, recipient=age_recipient) if age_recipient else partial(secret_generator,
                                                                                          reason=NO_RECIPIENT)
    services: list[Obj] = []
    unsealed: list[str] = []
    kept = dropped = routes = 0

    def observe(obj: Obj) -> None:
        if obj.get("kind") == "Service":
            services.append(_slim_service(obj))

    def cleaned(reports: _Reports) -> Iterator[Obj]:
        nonlocal kept, dropped, routes
        items = clean_stream(objects(), CleanOptions(storage_class=storage_class, ingress_class=ingress_class),
                             observe=observe)
        for item in items:
            record = _record(item, services, ingress_class)
            if item.cleaned is not None and item.cleaned.get("kind") == "Secret" and not age_recipient:
                record["warnings"] = [*record.get("warnings", []), NO_RECIPIENT]
                unsealed.append(item.ref.id.removeprefix("Secret/"))
            reports.add(record)
            routes += "equivalent_ingress" in record
            if item.cleaned is None:
                dropped += 1
                continue
            kept += 1
            yield item.cleaned

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out.parent, max_depth=1)  # staging folders of killed runs
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}{STAGING_MARK}{os.getpid()}-", dir=out.parent))
    try:
        reports = _Reports(staging)
        try:
            DirectoryTarget(staging, seal=seal).write_new(cleaned(reports))
        finally:
            reports.close()
        sync_staged()
        _check_out(out)
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    secrets = ("Secrets sealed for the recipient" if age_recipient else
               f"{len(unsealed)} Secret(s) written as secretGenerator entries whose values you fill in "
               f"manifests/{SECRET_VALUES_DIR}/ (ignored by git)")
    route_note = (f"; {routes} OpenShift Route(s) kept, which K3s does not serve: the equivalent Ingress is in "
                  "report.json") if routes else ""
    return CleanResult(f"{kept + dropped} objects read, {kept} kept, {dropped} dropped; {secrets}{route_note}; "
                       f"manifests in {out / 'manifests'}, rule report in {out / 'report.json'}", unsealed)
