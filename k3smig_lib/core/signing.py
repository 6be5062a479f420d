"""The run's signing key and DSSE envelopes: what makes a rewritten ledger detectable without trusting the folder.

``run.json`` alone is unkeyed: anyone who can write the run folder can edit a report, re-hash every
file and rebuild the chain. A signature by a key kept *outside* the run folder closes that: the
Ed25519 key lives in ``$XDG_CONFIG_HOME/k3smig/keys/`` (created on first use, mode 0600), the run gets
only its public half, and a verifier trusts a public key it obtained elsewhere (``--key``, or the keys
this machine knows: its own signing key and ``k3smig/trusted-keys/*.pem``).

The envelope is the standard DSSE format (``payloadType``, base64 ``payload``, ``signatures`` of
``keyid``/``sig`` over the pre-authentication encoding), so any DSSE implementation can check it —
the tests do so with ``securesystemslib``. The key id is the sha256 of the raw public key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from k3smig_lib.core.fsafe import atomic_write
from k3smig_lib.errors import LedgerError

#: DSSE payload type of an in-toto Statement.
PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_NAME = "run-signing.ed25519.pem"
#: Environment variable naming another signing key file (CI, a shared operator key).
KEY_ENV = "K3SMIG_SIGNING_KEY"


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/k3smig`` (``~/.config/k3smig``): outside every run folder and every target tree."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "k3smig"


def key_path() -> Path:
    """Where this machine's run signing key lives."""
    override = os.environ.get(KEY_ENV, "")
    return Path(override).expanduser() if override else config_dir() / "keys" / KEY_NAME


def raw_public(public: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(public: Ed25519PublicKey) -> str:
    """sha256 of the raw public key, hex: the fingerprint reports show and envelopes carry."""
    return hashlib.sha256(raw_public(public)).hexdigest()


def public_pem(public: Ed25519PublicKey) -> bytes:
    """The public key as PEM (SubjectPublicKeyInfo), the form written into the run and given to ``--key``."""
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_public(path: Path) -> Ed25519PublicKey:
    """Read a PEM public key (or the public half of a PEM private key).

    Raises:
        LedgerError: unreadable, or not an Ed25519 key.
    """
    try:
        data = path.read_bytes()
        key: Any = (serialization.load_pem_private_key(data, None).public_key() if b"PRIVATE KEY" in data
                    else serialization.load_pem_public_key(data))
    except (OSError, ValueError, TypeError) as e:
        raise LedgerError(f"cannot read the public key {path}: {e}", fix="give an Ed25519 PEM public key") from e
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"{path} is not an Ed25519 key", fix="give the run signing key's public half")
    return key


def signing_key(*, create: bool = True) -> Ed25519PrivateKey:
    """This machine's signing key, created on first use (mode 0600, folder 0700).

    Raises:
        LedgerError: the key file is unreadable, not Ed25519, or readable by others.
    """
    path = key_path()
    if not path.exists() and create:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption())
        try:
            atomic_write(path.parent, path.name, pem, mode=0o600)
        except FileExistsError:  # pragma: no cover - another process made it meanwhile
            pass
    try:
        if path.stat().st_mode & 0o077:
            raise LedgerError(f"the signing key {path} is readable by other users",
                              fix=f"chmod 600 {path} (and check who read it)")
        key = serialization.load_pem_private_key(path.read_bytes(), None)
    except (OSError, ValueError, TypeError) as e:
        raise LedgerError(f"cannot read the signing key {path}: {e}",
                          fix=f"restore it from backup, or move it away to create a new one ({KEY_ENV} names "
                          "another file)") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path} is not an Ed25519 private key", fix="point K3SMIG_SIGNING_KEY at an Ed25519 key")
    return key


def known_keys() -> dict[str, Ed25519PublicKey]:
    """Public keys this machine trusts without ``--key``: its own signing key and ``trusted-keys/*.pem``."""
    keys: dict[str, Ed25519PublicKey] = {}
    if key_path().is_file():
        own = signing_key(create=False).public_key()
        keys[keyid(own)] = own
    for pem in sorted((config_dir() / "trusted-keys").glob("*.pem")):
        pub = load_public(pem)
        keys[keyid(pub)] = pub
    return keys


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is signed, so type and body cannot be swapped.

    Examples:
        >>> pae("t", b"ab")
        b'DSSEv1 1 t 2 ab'
    """
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, key: Ed25519PrivateKey, payload_type: str = PAYLOAD_TYPE) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` signed by ``key``."""
    sig = key.sign(pae(payload_type, payload))
    return {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type,
            "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(sig).decode()}]}


def open_envelope(envelope: dict[str, Any], trusted: dict[str, Ed25519PublicKey]) -> tuple[dict[str, Any], str]:
    """Check an envelope's signature against trusted keys; return the statement and the key id that signed.

    Raises:
        LedgerError: wrong payload type, no signature by a trusted key, or a signature that does not verify.
    """
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise LedgerError(f"the run record has payload type {envelope.get('payloadType')!r}, not {PAYLOAD_TYPE}",
                          fix="give the envelope k3smig wrote")
    try:
        payload = base64.b64decode(envelope["payload"], validate=True)
        signatures = [(str(s["keyid"]), base64.b64decode(s["sig"], validate=True)) for s in envelope["signatures"]]
    except (KeyError, TypeError, ValueError) as e:
        raise LedgerError(f"the run record envelope is malformed: {e}", fix="give the envelope k3smig wrote") from e
    unknown = []
    for kid, sig in signatures:
        key = trusted.get(kid)
        if key is None:
            unknown.append(kid)
            continue
        try:
            key.verify(sig, pae(PAYLOAD_TYPE, payload))
        except InvalidSignature:
            raise LedgerError(f"the run record's signature by key {kid[:16]}… does not verify",
                              fix="the record was changed after signing: do not trust this run") from None
        statement: dict[str, Any] = json.loads(payload)
        return statement, kid
    raise LedgerError(f"the run record is signed by a key this machine does not trust ({', '.join(unknown) or 'none'})",
                      fix="pass the operator's public key with --key, or put it in "
                      f"{config_dir() / 'trusted-keys'}/ after checking its fingerprint")
