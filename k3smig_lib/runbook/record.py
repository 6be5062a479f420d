"""The signed run record: an in-toto Statement over every file of the run, in a DSSE envelope, anchored outside.

After the last phase the runner writes the ledger, then signs a Statement whose subjects are every
file of the run folder (``run.json`` included) with its sha256, and whose predicate holds the run's
facts (verdict, parameters digest, source and target identity, the chained phase records). The
envelope is ``run.intoto.dsse.json``; the key stays outside the run (:mod:`k3smig_lib.core.signing`).

The run's digest (sha256 of the signed Statement) is also recorded where the migration landed — a
file ``k3smig-runs/<run id>.json`` in a directory target's GitOps tree, an annotation on the ConfigMap
``k3smig-run-<run id>`` in the namespace ``k3smig-system`` of a live target — so a run folder replaced
whole, with a new key, still disagrees with the target.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from k3smig_lib.core import signing
from k3smig_lib.core.config import Settings
from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.errors import K3sMigError, LedgerError
from k3smig_lib.runbook.ledger import ENVELOPE, LEDGER, digest_differences, hash_tree, read_ledger, verify_ledger

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:k3smig:run-record:v1"
PUBLIC_KEY = "signing/public_key.pem"
ANCHOR_NAMESPACE = "k3smig-system"
ANCHOR_ANNOTATION = "k3smig.io/run-digest"
ANCHOR_FIELD_MANAGER = "k3smig-run-record"  # not "k3smig": the record is no migrated object


def statement(run_dir: Path, ledger: dict[str, Any]) -> dict[str, Any]:
    """The in-toto Statement v1 of a run: every file (with ``run.json``) and the run's facts."""
    files = {**hash_tree(run_dir), LEDGER: hashlib.sha256((run_dir / LEDGER).read_bytes()).hexdigest()}
    predicate = {
        "run_id": ledger.get("run_id"), "environment": ledger.get("environment"), "status": ledger.get("status"),
        "verdict": ledger.get("verdict", ""), "created": ledger.get("created"), "finished": ledger.get("finished"),
        "code_version": ledger.get("code_version"), "parameters_sha256": ledger.get("parameters_sha256"),
        "source": ledger.get("source"), "target": ledger.get("target"), "phases": ledger.get("phases", []),
        "ledger_hash": ledger.get("ledger_hash"),
    }
    return {"_type": STATEMENT_TYPE, "predicateType": PREDICATE_TYPE, "predicate": predicate,
            "subject": [{"name": name, "digest": {"sha256": digest}} for name, digest in sorted(files.items())]}


def payload_bytes(stmt: dict[str, Any]) -> bytes:
    """The exact bytes signed (sorted keys, compact)."""
    return json.dumps(stmt, sort_keys=True, separators=(",", ":")).encode()


def signing_facts(key_id: str) -> dict[str, str]:
    """What the ledger header and the index say about the signature (before it exists)."""
    return {"keyid": key_id, "public_key": PUBLIC_KEY, "envelope": ENVELOPE}


def write_public_key(run_dir: Path) -> str:
    """Create the signing key on first use, write its public half into the run; return its key id."""
    public = signing.signing_key().public_key()
    atomic_write(run_dir, PUBLIC_KEY, signing.public_pem(public))
    return signing.keyid(public)


def sign_run(run_dir: Path) -> str:
    """Sign the run as it stands (ledger written); return the run digest (sha256 of the signed Statement)."""
    payload = payload_bytes(statement(run_dir, read_ledger(run_dir)))
    envelope = signing.sign(payload, signing.signing_key())
    atomic_write(run_dir, ENVELOPE, json.dumps(envelope, indent=2, sort_keys=True) + "\n")
    return hashlib.sha256(payload).hexdigest()


def anchor(cfg: Settings, run_id: str, digest: str) -> str:
    """Record the run digest on the target; return where (the text the ledger keeps).

    Raises:
        K3sMigError: the target refused the record (the caller reports it; the run itself stands).
    """
    record = {"run_id": run_id, "digest": f"sha256:{digest}"}
    if cfg.target_kind == "directory":
        atomic_write(cfg.target_path(), f"k3smig-runs/{run_id}.json", json.dumps(record, indent=2) + "\n")
        return f"k3smig-runs/{run_id}.json in the target tree"
    from k3smig_lib.backends.live_target import LiveTarget
    from k3smig_lib.k8s.apply import ServerApply
    from k3smig_lib.phases.context import target_ref

    target = LiveTarget(target_ref(cfg))
    server = ServerApply(target.kube, target.resources, ANCHOR_FIELD_MANAGER)
    name = anchor_name(run_id)
    server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ANCHOR_NAMESPACE}}, dry_run=False)
    server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": name, "namespace": ANCHOR_NAMESPACE, "annotations": {ANCHOR_ANNOTATION: record["digest"]},
        "labels": {"app.kubernetes.io/managed-by": "k3smig"}}, "data": {"run_id": run_id}}, dry_run=False, force=True)
    return f"ConfigMap {ANCHOR_NAMESPACE}/{name} on the target"


def anchor_name(run_id: str) -> str:
    """ConfigMap name of a run's anchor (names are lower case).

    Examples:
        >>> anchor_name("20261207T104411Z-demo")
        'k3smig-run-20261207t104411z-demo'
    """
    return f"k3smig-run-{run_id.lower()}"


def anchored_digest(cfg: Settings, run_id: str) -> str:
    """The digest the target holds for ``run_id`` ("" when it holds none)."""
    if cfg.target_kind == "directory":
        path = cfg.target_path() / "k3smig-runs" / f"{run_id}.json"
        return str(json.loads(path.read_text()).get("digest", "")) if path.is_file() else ""
    from k3smig_lib.backends.live_target import LiveTarget
    from k3smig_lib.phases.context import target_ref

    live = LiveTarget(target_ref(cfg)).get({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": anchor_name(run_id), "namespace": ANCHOR_NAMESPACE}})
    return str(((live or {}).get("metadata") or {}).get("annotations", {}).get(ANCHOR_ANNOTATION, ""))


def _trusted(keys: list[Path] | None) -> dict[str, Any]:
    if keys:
        return {signing.keyid(k): k for k in (signing.load_public(p) for p in keys)}
    return dict(signing.known_keys())


def verify_run(run_dir: Path, *, keys: list[Path] | None = None, against_target: bool = False) -> list[str]:
    """Every check a third party can make on a run folder; return the problems (empty = intact and signed).

    The ledger (hashes, chain, folder shape), then the envelope: signed by a trusted key (``keys``, or
    this machine's known keys), its Statement naming exactly the files of the folder with their
    digests; with ``against_target``, the digest recorded on the target must be this run's.

    Raises:
        LedgerError: the ledger is missing or unreadable.
    """
    problems = verify_ledger(run_dir)
    path = run_dir / ENVELOPE
    if not path.is_file():
        return [*problems, f"not signed: {ENVELOPE} is missing (a run is signed after its last phase)"]
    try:
        envelope = json.loads(path.read_text())
        stmt, _ = signing.open_envelope(envelope, _trusted(keys))
    except (LedgerError, json.JSONDecodeError) as e:
        return [*problems, f"signature: {e}"]
    if stmt.get("_type") != STATEMENT_TYPE or stmt.get("predicateType") != PREDICATE_TYPE:
        problems.append("the signed record is not a k3smig run Statement")
    signed = {s["name"]: s["digest"]["sha256"] for s in stmt.get("subject", [])}
    actual = {**hash_tree(run_dir), LEDGER: hashlib.sha256((run_dir / LEDGER).read_bytes()).hexdigest()}
    problems += digest_differences(signed, actual, missing="signed but missing", extra="not covered by the signature",
                                   changed="differs from the signed record")
    if against_target:
        problems += _anchor_problems(run_dir, payload_bytes(stmt))
    return problems


def _anchor_problems(run_dir: Path, payload: bytes) -> list[str]:
    ledger = read_ledger(run_dir)
    cfg = Settings(**{**ledger.get("parameters", {}), "run_dir": str(run_dir)})
    try:
        held = anchored_digest(cfg, run_dir.name)
    except (K3sMigError, OSError, ValueError) as e:
        return [f"anchor: cannot read the target's record: {e}"]
    mine = f"sha256:{hashlib.sha256(payload).hexdigest()}"
    if not held:
        return [f"anchor: the target holds no record of run {run_dir.name}"]
    return [] if held == mine else [f"anchor: the target records {held} for this run, the folder holds {mine}"]
