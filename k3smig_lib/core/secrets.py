"""Secrets: which ones move, how they are shown, and which values the leak gate must look for.

Three rules shape this module (docs/safety.md §1 rules 11-12, §4.6):

* a Secret value is never shown; reports carry name, type, key names, byte lengths and a keyed
  HMAC fingerprint whose key lives only in the environment of the run (``K3SMIG_RUN_KEY``), so a
  low-entropy value such as ``changeme`` cannot be recovered offline from an archived report;
* the skip set (docs/cleaning-rules.md W1, W5, W6, KEEP4, KEEP5) decides per Secret whether it migrates, and
  says why when it does not;
* every value that could leak, including values hidden in ``last-applied-configuration``
  annotations, Docker config ``auths`` and Helm release records, is collected for the leak gate.
"""

from __future__ import annotations

import base64
import binascii
import copy
import gzip
import hashlib
import hmac
import json
import os
import secrets as _random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import yaml

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import LedgerError, ParameterError, SourceError

RUN_KEY_ENV = "K3SMIG_RUN_KEY"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
HELM_RELEASE_TYPE = "helm.sh/release.v1"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
_MIN_KEY_BYTES = 16
_PEM_CERT = b"-----BEGIN CERTIFICATE-----"


def _meta(obj: Obj) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _notes(obj: Obj) -> dict[str, str]:
    """Annotations (not ``objects.annotations``: ``from __future__ import annotations`` shadows it)."""
    notes = _meta(obj).get("annotations")
    return {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}


def _where(secret: Obj) -> tuple[str, str]:
    meta = _meta(secret)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def is_cert_manager_tls(secret: Obj) -> bool:
    """True for a TLS Secret issued by cert-manager (KEEP4: kept so certificates are not re-issued)."""
    if secret.get("type") != "kubernetes.io/tls":
        return False
    if any(k.startswith("cert-manager.io/") for k in _notes(secret)):
        return True
    owners = _meta(secret).get("ownerReferences") or []
    return any(str(o.get("apiVersion", "")).startswith("cert-manager.io/") for o in owners)


def _generated_reason(secret: Obj, kind_type: str) -> str:
    """Secrets the source cluster generated for itself (W5, W6, W8)."""
    notes = _notes(secret)
    if kind_type == "kubernetes.io/service-account-token":
        if notes.get(SA_NAME_ANNOTATION) == "default":
            return "W6: token of the default ServiceAccount; the target creates its own"
        return "W5: service-account token bound to the source cluster; the target issues its own tokens"
    # OpenShift generates a dockercfg Secret per ServiceAccount; a hand-made one is user data.
    if kind_type == "kubernetes.io/dockercfg" and (
        SA_NAME_ANNOTATION in notes or any(k.startswith("openshift.io/") for k in notes)
    ):
        return "W5: registry credentials generated for a ServiceAccount by the source platform"
    if kind_type == "bootstrap.kubernetes.io/token":
        return "W8: bootstrap token for joining nodes to the source cluster"
    return ""


def skip_reason(secret: Obj, *, keep_helm_releases: bool = False) -> str:
    """Say why a Secret must not be recreated on the target, or ``""`` when it migrates.

    Args:
        secret: a Secret as exported (before cleaning: the rules read ``type``, annotations and
            ``ownerReferences``). A ConfigMap ``kube-root-ca.crt`` is accepted too (W6).
        keep_helm_releases: migrate ``sh.helm.release.v1.*`` records (KEEP5) so ``helm upgrade``
            keeps working on the target.

    Returns:
        The reason, starting with the rule ID, or ``""``.

    Examples:
        >>> skip_reason({"kind": "Secret", "type": "bootstrap.kubernetes.io/token", "metadata": {}})[:3]
        'W8:'
        >>> skip_reason({"kind": "Secret", "type": "Opaque", "metadata": {"name": "db"}})
        ''
    """
    kind_type, (_, name) = str(secret.get("type") or "Opaque"), _where(secret)
    if secret.get("kind") == "ConfigMap":
        return "W6: created in every namespace by the target" if name == "kube-root-ca.crt" else ""
    generated = _generated_reason(secret, kind_type)
    if generated:
        return generated
    if kind_type == HELM_RELEASE_TYPE or name.startswith("sh.helm.release.v1."):
        if keep_helm_releases:
            return ""
        return "KEEP5 not requested: Helm release record (holds rendered values); objects move as plain YAML"
    owners = _meta(secret).get("ownerReferences") or []
    if owners and not is_cert_manager_tls(secret):  # KEEP4: cert-manager TLS Secrets stay
        owner = owners[0]
        return f"W1: owned by {owner.get('kind', '?')}/{owner.get('name', '?')}; its controller recreates it"
    return ""


class Fingerprinter:
    """Keyed fingerprints of Secret values: equal values give equal fingerprints within one run key.

    The fingerprint is ``HMAC-SHA256(key, "ns|name|key|" + value)`` in hex, cut to 16 characters.
    Namespaces and names are DNS labels and Secret keys match ``[-._a-zA-Z0-9]+``, so ``|`` cannot
    make two different inputs collide. ``repr`` never shows the key.

    Args:
        key: the HMAC key (at least 16 bytes).

    Raises:
        ParameterError: the key is shorter than 16 bytes.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) < _MIN_KEY_BYTES:
            raise ParameterError(
                f"the fingerprint key has {len(key)} bytes, at least {_MIN_KEY_BYTES} are needed",
                fix=f"use a key from generate_run_key() ({RUN_KEY_ENV} holds it in hex)",
            )
        self._key = bytes(key)
        self.ephemeral = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Fingerprinter:
        """Use ``K3SMIG_RUN_KEY`` (hex) when set, else a random key for this process only.

        A random key still hides values, but fingerprints made by two processes (two phase
        kernels) cannot be compared: ``ephemeral`` is then True so a report can say so.

        Raises:
            ParameterError: ``K3SMIG_RUN_KEY`` is set but not hex, or too short (the value is never
                quoted).
        """
        text = (os.environ if env is None else env).get(RUN_KEY_ENV, "").strip()
        if not text:
            made = cls(_random.token_bytes(32))
            made.ephemeral = True
            return made
        try:
            key = bytes.fromhex(text)
        except ValueError:
            raise ParameterError(
                f"{RUN_KEY_ENV} is not a hex string", fix="set it to the output of generate_run_key()"
            ) from None
        return cls(key)

    @property
    def key_id(self) -> str:
        """A short public tag of the key, so two ledgers can be checked to use the same key."""
        return hashlib.sha256(b"k3smig-key-id|" + self._key).hexdigest()[:8]

    def fingerprint(self, namespace: str, name: str, key: str, value: bytes) -> str:
        """Fingerprint one value.

        Examples:
            >>> fp = Fingerprinter(b"0" * 32)
            >>> fp.fingerprint("a", "db", "pw", b"changeme") == fp.fingerprint("a", "db", "pw", b"changeme2")
            False
        """
        message = f"{namespace}|{name}|{key}|".encode() + value
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Fingerprinter(key_id={self.key_id!r}, ephemeral={self.ephemeral})"


def generate_run_key() -> str:
    """A fresh run key in hex, for the runner to put in ``K3SMIG_RUN_KEY`` (never on disk)."""
    return _random.token_hex(32)


def decoded_items(secret: Obj) -> dict[str, bytes]:
    """The values of a Secret as bytes: ``data`` base64-decoded, then ``stringData`` (which wins).

    Raises:
        SourceError: a ``data`` value is not valid base64 (names the Secret and key, never the value).

    Examples:
        >>> decoded_items({"data": {"u": "YWRtaW4="}, "stringData": {"p": "s3cret"}})
        {'u': b'admin', 'p': b's3cret'}
    """
    out: dict[str, bytes] = {}
    for key, text in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(text or ""), validate=True)
        except (binascii.Error, ValueError):
            namespace, name = _where(secret)
            raise SourceError(
                f"data key {key!r} is not valid base64",
                fix="re-export the Secret; data values must be base64 as the API returns them",
                resource=f"secret/{name}",
                namespace=namespace,
            ) from None
    for key, text in (secret.get("stringData") or {}).items():
        out[str(key)] = str(text or "").encode()
    return out


def ledger_rows(
    secrets: Sequence[Obj], fp: Fingerprinter, *, side: str, keep_helm_releases: bool = False
) -> list[dict[str, Any]]:
    """One row per (Secret, key): what a report shows instead of the value.

    A Secret without keys still gets one row (``key`` ``""``), so an empty Secret that went
    missing is noticed. Skipped Secrets are listed too, with ``action`` ``"skip"`` and the reason.
    ``key_id`` tells which run key made the fingerprint (see :func:`compare_ledgers`).
    """
    rows: list[dict[str, Any]] = []
    for secret in secrets:
        namespace, name = _where(secret)
        reason = skip_reason(secret, keep_helm_releases=keep_helm_releases)
        base = {
            "namespace": namespace, "name": name, "type": str(secret.get("type") or "Opaque"),
            "immutable": bool(secret.get("immutable", False)), "action": "skip" if reason else "migrate",
            "reason": reason, "side": side, "key_id": fp.key_id,
        }
        items = decoded_items(secret)
        for key in sorted(items) or [""]:
            value = items.get(key, b"")
            fingerprint = fp.fingerprint(namespace, name, key, value) if key else ""
            rows.append({**base, "key": key, "length": len(value), "fingerprint": fingerprint})
    return rows


def _index(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], Mapping[str, Any]]:
    return {(str(r["namespace"]), str(r["name"]), str(r["key"])): r for r in rows}


def _check_same_key(rows: Iterable[Mapping[str, Any]]) -> None:
    ids = {str(r.get("key_id", "")) for r in rows} - {""}
    if len(ids) > 1:
        raise LedgerError(
            "source and target fingerprints were made with different run keys and cannot be compared",
            fix=f"run both phases with the same {RUN_KEY_ENV} (the runner sets it for the whole run)",
        )


def _verdict(src: Mapping[str, Any] | None, dst: Mapping[str, Any] | None) -> tuple[str, str]:
    if src is None:
        return "extra on target", ""
    if dst is None:
        return "missing on target", ""
    if dst["type"] != src["type"]:
        return "differs", f"type {src['type']} on source, {dst['type']} on target"
    if dst["fingerprint"] != src["fingerprint"] or dst["length"] != src["length"]:
        return "differs", "value differs"
    return "equal", ""


def _side(row: Mapping[str, Any] | None, side: str) -> dict[str, Any]:
    return {f"{side}_length": row["length"] if row else None,
            f"{side}_fingerprint": row["fingerprint"] if row else ""}


def compare_ledgers(
    source_rows: Sequence[Mapping[str, Any]], target_rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Compare source and target ledgers per key of every Secret that was to migrate.

    Returns:
        Rows with ``status`` ``"equal"``, ``"missing on target"``, ``"differs"`` (fingerprint, length
        or type, explained in ``detail``) or ``"extra on target"`` (a key the source Secret lacks).

    Raises:
        LedgerError: the two ledgers were made with different run keys.
    """
    _check_same_key([*source_rows, *target_rows])
    source = _index(r for r in source_rows if r.get("action") == "migrate")
    wanted = {ident[:2] for ident in source}
    target = {ident: r for ident, r in _index(target_rows).items() if ident[:2] in wanted}
    present = {ident[:2]: r for ident, r in target.items()}
    out: list[dict[str, Any]] = []
    for ident in sorted(set(source) | {i for i in target if i[2]}):
        src, dst = source.get(ident), target.get(ident)
        if dst is None and not ident[2] and ident[:2] in present:  # an empty Secret: existing is enough
            dst = {**present[ident[:2]], "length": 0, "fingerprint": ""}
        status, detail = _verdict(src, dst)
        kind_type = (src or dst or {})["type"]
        out.append({"namespace": ident[0], "name": ident[1], "key": ident[2], "type": kind_type,
                    "status": status, "detail": detail, **_side(src, "source"), **_side(dst, "target")})
    return out


def _redact_values(values: Mapping[str, Any], *, encoded: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, text in values.items():
        raw = str(text or "")
        try:
            size = len(base64.b64decode(raw, validate=True)) if encoded else len(raw.encode())
        except (binascii.Error, ValueError):
            size = len(raw.encode())
        out[key] = f"<redacted {size} bytes>"
    return out


def redact(obj: Obj) -> Obj:
    """A deep copy safe to display: Secret values and their last-applied annotation replaced.

    ``data``/``stringData`` values become ``<redacted N bytes>`` (N = decoded length), and so does
    ``kubectl.kubernetes.io/last-applied-configuration`` of a Secret, which holds the values too.
    ``List`` objects are redacted item by item; any other object comes back as an unchanged copy.

    Examples:
        >>> redact({"kind": "Secret", "data": {"password": "Y2hhbmdlbWU="}})["data"]
        {'password': '<redacted 8 bytes>'}
    """
    out = copy.deepcopy(obj)
    if isinstance(out.get("items"), list) and str(out.get("kind", "")).endswith("List"):
        out["items"] = [redact(i) if isinstance(i, dict) else i for i in out["items"]]
        return out
    if out.get("kind") != "Secret":
        return out
    for field, encoded in (("data", True), ("stringData", False)):
        if isinstance(out.get(field), dict):
            out[field] = _redact_values(out[field], encoded=encoded)
    notes = _meta(out).get("annotations")
    if isinstance(notes, dict) and LAST_APPLIED in notes:
        notes[LAST_APPLIED] = f"<redacted {len(str(notes[LAST_APPLIED]).encode())} bytes>"
    return out


def _is_public_certificate(value: bytes) -> bool:
    """PEM certificates (no private key) are public: gating on them only gives false alarms."""
    return value.lstrip().startswith(_PEM_CERT) and b"PRIVATE KEY" not in value


def _docker_auth_values(value: bytes) -> Iterator[bytes]:
    try:
        config = json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return
    auths = config.get("auths", config) if isinstance(config, dict) else {}
    for entry in auths.values() if isinstance(auths, dict) else []:
        if not isinstance(entry, dict):
            continue
        for field in ("password", "auth", "identitytoken", "registrytoken"):
            if entry.get(field):
                yield str(entry[field]).encode()
        if entry.get("auth"):
            try:
                yield base64.b64decode(str(entry["auth"])).partition(b":")[2]
            except (binascii.Error, ValueError):
                pass


def _helm_release_values(value: bytes) -> Iterator[bytes]:
    """Values of the Secrets rendered inside a Helm release record (base64 → gzip → JSON)."""
    try:
        release = json.loads(gzip.decompress(base64.b64decode(value)))
        docs = list(yaml.safe_load_all(str(release.get("manifest") or "")))
    except (binascii.Error, ValueError, OSError, yaml.YAMLError, AttributeError):
        return
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Secret":
            yield from _values_of(doc, depth=1)


def _values_of(secret: Obj, *, depth: int = 0) -> Iterator[bytes]:
    try:
        items = decoded_items(secret)
    except SourceError:
        items = {k: str(v).encode() for k, v in (secret.get("data") or {}).items()}
    is_token = secret.get("type") == "kubernetes.io/service-account-token"
    for key, value in items.items():
        if (is_token and key == "namespace") or _is_public_certificate(value):
            continue
        yield value
        if key in (".dockerconfigjson", ".dockercfg"):
            yield from _docker_auth_values(value)
        if depth == 0 and secret.get("type") == HELM_RELEASE_TYPE:
            yield from _helm_release_values(value)
    applied = _notes(secret).get(LAST_APPLIED)
    if applied and depth == 0:
        try:
            previous = json.loads(applied)
        except ValueError:
            yield applied.encode()
            return
        if isinstance(previous, dict):
            yield from _values_of(previous, depth=1)


def secret_values(objects: Iterable[Obj]) -> set[bytes]:
    """Every value the leak gate must look for, from every Secret in ``objects``.

    Besides ``data``/``stringData`` this collects the values kept in a Secret's last-applied
    annotation (they may be older values), the password and ``auth`` of Docker configs, and the
    Secrets rendered into Helm release records. Public certificates and the ``namespace`` key of
    token Secrets are left out: they are not secret and appear legitimately in reports.
    Empty values are dropped.
    """
    found: set[bytes] = set()
    for obj in objects:
        if obj.get("kind") == "Secret":
            found.update(v for v in _values_of(obj) if v)
    return found
