"""Seal Secret manifests for a GitOps tree in the SOPS format, so values are never committed in clear.

The output is exactly what ``sops --encrypt --age <recipient> --encrypted-regex '^(data|stringData)$'``
writes, so Flux, ``sops -d`` and the helm-secrets plugin decrypt it. The format (getsops/sops v3,
``sops.go``, ``aes/cipher.go``, ``age/keysource.go``):

* a random 32-byte data key; every value under a key matching ``encrypted_regex`` becomes
  ``ENC[AES256_GCM,data:…,iv:…,tag:…,type:str]``: AES-256-GCM, 32-byte IV, and the value's path
  joined with ``:`` plus a trailing ``:`` as additional data (``data:password:``), so a value cannot
  be moved to another key; empty strings stay empty;
* the MAC is SHA-512 over *every* leaf value (encrypted or not) in document order, as upper-case
  hex, itself encrypted with the data key and the ``lastmodified`` timestamp as additional data;
* the data key is age-encrypted (ASCII armour) to each recipient under ``sops.age``.

Because the MAC follows document order, :func:`seal_secret` returns its keys sorted at every level:
the manifest then round-trips through ``yaml.safe_dump`` with or without ``sort_keys``.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import hashlib
import os
import re
from collections.abc import Callable
from typing import Any

import pyrage
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from k3smig_lib.core.objects import Obj
from k3smig_lib.core.secrets import LAST_APPLIED
from k3smig_lib.errors import ParameterError, SourceError

SOPS_VERSION = "3.13.3"
ENCRYPTED_REGEX = "^(data|stringData)$"
VALUES_OMITTED = "k3smig.io/values-omitted"
_MAC_ONLY_ENCRYPTED_INIT = hashlib.sha256(b"sops").digest()
_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_IV_BYTES = 32
_TAG_BYTES = 16

Leaf = str | int | float | bool | bytes
_KINDS: dict[type, str] = {int: "int", float: "float", bytes: "bytes"}


def is_age_recipient(text: str) -> bool:
    """True for an age X25519 public key (``age1…``), the recipient type sealing supports.

    Examples:
        >>> is_age_recipient("age1notakey")
        False
    """
    try:
        pyrage.x25519.Recipient.from_str(text.strip())
    except Exception:  # pyrage raises its own RecipientError, or ValueError on odd input
        return False
    return text.strip().startswith("age1")


def _go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    text = format(decimal.Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _leaf_bytes(value: Leaf) -> bytes:
    """How a leaf enters the MAC (sops ``ToBytes``)."""
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return _go_float(value).encode()
    return str(value).encode()


def _canonical(node: Any, where: str) -> Any:
    """Sorted keys, timestamps as RFC 3339 text; anything sops cannot hold is refused."""
    if isinstance(node, dict):
        if not all(isinstance(k, str) for k in node):
            raise ParameterError(f"{where} has a non-string key", fix="quote the key in the manifest")
        return {k: _canonical(node[k], f"{where}.{k}") for k in sorted(node)}
    if isinstance(node, list):
        return [_canonical(v, where) for v in node]
    if isinstance(node, dt.datetime):
        return node.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if node.tzinfo else node.isoformat()
    if isinstance(node, dt.date):
        return node.isoformat()
    if node is None or isinstance(node, str | int | float | bool):
        return node
    raise ParameterError(f"{where} holds a {type(node).__name__}, which a manifest cannot carry")


def _walk(node: Any, path: list[str], leaf: Callable[[Any, list[str]], Any]) -> Any:
    """Walk like sops: mappings add their key to the path, lists do not, ``null`` is left alone."""
    if isinstance(node, dict):
        return {k: _walk(v, [*path, str(k)], leaf) for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, path, leaf) for v in node]
    return None if node is None else leaf(node, path)


def _aad(path: list[str]) -> bytes:
    return (":".join(path) + ":").encode()


def _encrypt(value: Leaf, key: bytes, aad: bytes) -> str:
    if isinstance(value, str | bytes) and not value:
        return ""
    kind = "bool" if isinstance(value, bool) else _KINDS.get(type(value), "str")
    iv = os.urandom(_IV_BYTES)
    sealed = AESGCM(key).encrypt(iv, _leaf_bytes(value), aad)
    parts = [base64.b64encode(p).decode() for p in (sealed[:-_TAG_BYTES], iv, sealed[-_TAG_BYTES:])]
    return f"ENC[AES256_GCM,data:{parts[0]},iv:{parts[1]},tag:{parts[2]},type:{kind}]"


def _decrypt(text: str, key: bytes, aad: bytes, where: str) -> tuple[Leaf, bytes]:
    """Return the typed value and the bytes it adds to the MAC."""
    if text == "":
        return "", b""
    match = _ENC.match(text)
    if not match:
        raise SourceError(f"{where} is not a SOPS-encrypted value", fix="re-seal the manifest")
    data, iv, tag = (base64.b64decode(match.group(i)) for i in (1, 2, 3))
    try:
        plain = AESGCM(key).decrypt(iv, data + tag, aad)
    except InvalidTag:
        raise SourceError(
            f"{where} does not decrypt: it was altered or moved from another key",
            fix="restore the sealed manifest from git history or seal it again",
        ) from None
    kind = match.group(4)
    value: Leaf = plain.decode() if kind != "bytes" else plain
    if kind == "int":
        value = int(plain)
    elif kind == "float":
        value = float(plain)
    elif kind == "bool":
        value = plain.decode().lower() in ("1", "t", "true")
    return value, plain


def _timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_last_applied(secret: Obj) -> Obj:
    out = copy.deepcopy(secret)
    notes = (out.get("metadata") or {}).get("annotations")
    if isinstance(notes, dict):
        notes.pop(LAST_APPLIED, None)  # it repeats every value in clear
        if not notes:
            out["metadata"].pop("annotations")
    return out


def _check_secret(secret: Obj) -> None:
    if secret.get("kind") != "Secret":
        raise ParameterError(f"only Secrets are sealed, not {secret.get('kind')!r}")
    if "sops" in secret:
        raise ParameterError("the Secret is already sealed (it has a sops block)", fix="seal the plain one")


def seal_secret(secret: Obj, recipient: str) -> Obj:
    """Encrypt the values of a Secret for ``recipient`` in the SOPS format (``sops -d`` opens it).

    The last-applied annotation is dropped (it holds every value in clear); everything else stays
    readable. Dump the result with PyYAML as is: its keys are already sorted, which the MAC needs.

    Args:
        secret: a Secret manifest (``data`` and/or ``stringData``).
        recipient: an age public key (``age1…``).

    Returns:
        The sealed manifest with a top-level ``sops`` block.

    Raises:
        ParameterError: not a Secret, already sealed, or ``recipient`` is not an age public key.
    """
    _check_secret(secret)
    if not is_age_recipient(recipient):
        raise ParameterError(
            "the sealing recipient is not an age public key", fix="give the age1… key from `age-keygen -y`"
        )
    tree, key, mac = _canonical(_drop_last_applied(secret), "secret"), os.urandom(32), hashlib.sha512()

    def leaf(value: Leaf, path: list[str]) -> Any:
        mac.update(_leaf_bytes(value))
        return _encrypt(value, key, _aad(path)) if any(re.search(ENCRYPTED_REGEX, p) for p in path) else value

    sealed: Obj = _walk(tree, [], leaf)
    stamp = _timestamp()
    armored = pyrage.encrypt(key, [pyrage.x25519.Recipient.from_str(recipient.strip())], armored=True)
    sealed["sops"] = {
        "age": [{"recipient": recipient.strip(), "enc": armored.decode()}],
        "lastmodified": stamp,
        "mac": _encrypt(mac.hexdigest().upper(), key, stamp.encode()),
        "encrypted_regex": ENCRYPTED_REGEX,
        "version": SOPS_VERSION,
    }
    return sealed


def strip_values(secret: Obj, reason: str = "") -> Obj:
    """A placeholder for a Secret that cannot be sealed: name, type and key names, empty values.

    Every key (from ``data`` and ``stringData``) stays in ``data`` with an empty value, so a reader
    of the GitOps tree sees what to fill in; ``k3smig.io/values-omitted`` says why the values are
    missing. The last-applied annotation, which repeats the values, is dropped.

    Examples:
        >>> s = strip_values({"kind": "Secret", "metadata": {"name": "db"}, "data": {"pw": "eA=="}})
        >>> s["data"], sorted(s["metadata"]["annotations"])
        ({'pw': ''}, ['k3smig.io/values-omitted'])
    """
    out = _drop_last_applied(secret)
    keys = sorted({*(out.pop("data", None) or {}), *(out.pop("stringData", None) or {})})
    out["data"] = dict.fromkeys(keys, "")
    notes = out.setdefault("metadata", {}).setdefault("annotations", {})
    notes[VALUES_OMITTED] = reason or "no age recipient given (K3SMIG_AGE_RECIPIENT); set the values by hand"
    return out


#: Folder (under the kustomize root, ``manifests/``) of the files a :func:`secret_generator` reads.
SECRET_VALUES_DIR = "secret-values"
#: The kustomize built-in generator config :func:`secret_generator` writes (listed under ``generators:``).
GENERATOR_API_VERSION = "builtin"


def secret_values_path(secret: Obj, key: str) -> str:
    """``secret-values/<namespace>/<name>/<key>``: the file that holds one value of an unsealed Secret.

    The namespace, name and key were checked against Kubernetes' name and key rules when the export
    was read (:mod:`k3smig_lib.core.names`), so they are plain path parts, never ``..``.
    """
    meta = secret.get("metadata") or {}
    return f"{SECRET_VALUES_DIR}/{meta.get('namespace') or 'default'}/{meta['name']}/{key}"


def secret_generator(secret: Obj, reason: str = "") -> Obj:
    """A kustomize ``SecretGenerator`` for a Secret that cannot be sealed: its values come from files.

    A Secret manifest with empty values would, once applied, replace a working credential with an
    empty one. The generator instead names one file per key (:func:`secret_values_path`, under
    ``manifests/``, ignored by git) that the user fills in; until every file exists, ``kubectl apply
    -k`` (kustomize) stops with "no such file" and applies nothing. The generated Secret keeps its
    name (no hash suffix), type, labels and annotations (less the last-applied one, which repeats the
    values); ``k3smig.io/values-omitted`` on the generator config says why and what to do.

    Examples:
        >>> g = secret_generator({"kind": "Secret", "type": "Opaque", "metadata": {"name": "db",
        ...     "namespace": "shop"}, "data": {"pw": "eA=="}, "stringData": {"user": "u"}})
        >>> g["kind"], g["files"], g["options"]["disableNameSuffixHash"]
        ('SecretGenerator', ['pw=secret-values/shop/db/pw', 'user=secret-values/shop/db/user'], True)
    """
    plain = _drop_last_applied(secret)
    meta = plain.get("metadata") or {}
    keys = sorted({*(plain.get("data") or {}), *(plain.get("stringData") or {})})
    options: dict[str, Any] = {"disableNameSuffixHash": True}
    if meta.get("labels"):
        options["labels"] = dict(meta["labels"])
    if meta.get("annotations"):
        options["annotations"] = dict(meta["annotations"])
    if plain.get("immutable"):
        options["immutable"] = True
    generator: Obj = {
        "apiVersion": GENERATOR_API_VERSION,
        "kind": "SecretGenerator",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace") or "default",
                     "annotations": {VALUES_OMITTED: reason or "fill in the files named in `files` before applying"}},
        "type": plain.get("type") or "Opaque",
        "files": [f"{key}={secret_values_path(plain, key)}" for key in keys],
        "options": options,
    }
    return generator


def _identities(identity: str) -> list[Any]:
    lines = [ln.strip() for ln in identity.splitlines() if ln.strip().startswith("AGE-SECRET-KEY-")]
    try:
        return [pyrage.x25519.Identity.from_str(ln) for ln in lines]
    except Exception:  # pyrage.IdentityError; the key itself is never quoted
        raise ParameterError("the age identity is not valid", fix="give the AGE-SECRET-KEY-1… line") from None


def _data_key(meta: dict[str, Any], identity: str) -> bytes:
    entries = [*(meta.get("age") or [])]
    for group in meta.get("key_groups") or []:
        entries += group.get("age") or []
    identities = _identities(identity)
    for entry in entries:
        try:
            return bytes(pyrage.decrypt(str(entry.get("enc", "")).encode(), identities))
        except Exception:  # pyrage.DecryptError: this entry is for another recipient
            continue
    recipients = ", ".join(str(e.get("recipient")) for e in entries) or "none"
    raise ParameterError(
        f"the age identity opens none of the sealed manifest's recipients ({recipients})",
        fix="use the identity whose public key is one of those recipients",
    )


def _rule(meta: dict[str, Any]) -> Callable[[list[str]], bool]:
    """Decide like sops ``shouldBeEncrypted`` for the key-based rules (not the comment rules)."""
    if meta.get("encrypted_comment_regex") or meta.get("unencrypted_comment_regex"):
        raise ParameterError("comment-based encryption rules are not supported", fix="use sops -d")
    if meta.get("encrypted_regex"):
        return lambda path: any(re.search(meta["encrypted_regex"], p) for p in path)
    if meta.get("unencrypted_regex"):
        return lambda path: not any(re.search(meta["unencrypted_regex"], p) for p in path)
    if meta.get("encrypted_suffix"):
        return lambda path: any(p.endswith(meta["encrypted_suffix"]) for p in path)
    suffix = meta.get("unencrypted_suffix") or "_unencrypted"
    return lambda path: not any(p.endswith(suffix) for p in path)


def _stamp_text(value: Any) -> str:
    if isinstance(value, dt.datetime):  # PyYAML turns an unquoted timestamp into a datetime
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def unseal_secret(sealed: Obj, identity: str) -> Obj:
    """Decrypt a SOPS-sealed manifest (ours or the ``sops`` CLI's) and verify its MAC.

    Args:
        sealed: the manifest as loaded from YAML (document order preserved).
        identity: age identity text (``AGE-SECRET-KEY-1…``; a key file with comments is fine).

    Returns:
        The manifest without its ``sops`` block, values in clear.

    Raises:
        ParameterError: not sealed, or the identity matches no recipient.
        SourceError: a value or the MAC does not verify (the file was altered).
    """
    meta = sealed.get("sops")
    if not isinstance(meta, dict):
        raise ParameterError("the manifest has no sops block: it is not sealed")
    key, encrypted = _data_key(meta, identity), _rule(meta)
    mac = hashlib.sha512()
    if meta.get("mac_only_encrypted"):
        mac.update(_MAC_ONLY_ENCRYPTED_INIT)

    def leaf(value: Any, path: list[str]) -> Any:
        if not encrypted(path):
            if not meta.get("mac_only_encrypted"):
                mac.update(_leaf_bytes(_canonical(value, ".".join(path))))
            return value
        plain, raw = _decrypt(str(value), key, _aad(path), ".".join(path))
        mac.update(raw)
        return plain

    tree = _walk({k: v for k, v in sealed.items() if k != "sops"}, [], leaf)
    stamp = _stamp_text(meta.get("lastmodified", ""))
    stored, _ = _decrypt(str(meta.get("mac", "")), key, stamp.encode(), "sops.mac")
    if stored != mac.hexdigest().upper():
        raise SourceError(
            "the sealed manifest's MAC does not match its values: it was altered after sealing",
            fix="restore it from git history or seal it again",
        )
    return dict(tree)

