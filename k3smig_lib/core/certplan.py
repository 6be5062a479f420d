"""Will cert-manager re-issue this certificate on the target? A prediction from its documented triggers.

Re-issuing every certificate at cutover is the classic migration disaster: Let's Encrypt allows 50
certificates per registered domain per 7 days, and a rebuilt cluster that lost its Secrets asks for
all of them at once. cert-manager's issuing controller re-issues when (its documentation, "Certificate
resource: issuance triggers"): the Secret is missing; the key does not match the certificate; the
certificate's DNS names, common name, URI or IP SANs differ from the spec; the Secret's issuer
annotations differ from the ``issuerRef``; the private key's algorithm or size differs from the spec;
or the certificate is within ``renewBefore`` of its expiry (default: a third of its duration).
This module applies exactly those checks to the migrated Secret, offline. The private key is read to
compare public keys and its size; nothing of it is returned.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from k3smig_lib.core.objects import Obj, annotations_of, get_path

#: Let's Encrypt: "New Certificates per Registered Domain", 50 per 7 days.
LE_WEEKLY_LIMIT = 50
DEFAULT_DURATION = timedelta(days=90)
#: Two-label public suffixes common enough to matter (no network, no PSL download): the registered
#: domain is one label more. Anything else is counted as the last two labels.
_TWO_LABEL_SUFFIXES = frozenset({"co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz",
                                 "co.jp", "com.br", "com.cn", "co.in", "co.za", "com.mx", "com.tr", "gouv.fr"})
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


@dataclass(frozen=True)
class Prediction:
    """One Certificate: kept as is, or re-issued on the target, and why."""

    certificate: str
    secret: str
    dns_names: tuple[str, ...]
    serial: str
    not_after: str
    renewal: str
    reissue: str  # "" when kept

    @property
    def verdict(self) -> str:
        """``kept`` or ``will re-issue: <reason>``."""
        return f"will re-issue: {self.reissue}" if self.reissue else "kept"


def parse_duration(text: str) -> timedelta:
    """A Go duration as cert-manager writes it (``2160h``, ``720h30m``)."""
    total = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in _DURATION.findall(text or ""))
    return timedelta(seconds=total)


def registered_domain(name: str) -> str:
    """The registered domain Let's Encrypt counts a name against.

    Examples:
        >>> registered_domain("vault.example.org"), registered_domain("a.b.example.co.uk")
        ('example.org', 'example.co.uk')
    """
    labels = name.lower().rstrip(".").lstrip("*.").split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str], set[str]]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    except x509.ExtensionNotFound:
        return set(), set(), set()
    dns = set(ext.get_values_for_type(x509.DNSName))  # type: ignore[attr-defined]
    uris = set(ext.get_values_for_type(x509.UniformResourceIdentifier))  # type: ignore[attr-defined]
    ips = {str(i) for i in ext.get_values_for_type(x509.IPAddress)}  # type: ignore[attr-defined]
    return dns, uris, ips


def _key_facts(key: Any) -> tuple[str, int]:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "ECDSA", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519", 0
    return type(key).__name__, 0


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _reasons(spec: dict[str, Any], secret: Obj, cert: x509.Certificate, now: datetime) -> list[str]:
    reasons: list[str] = []
    data = secret.get("data") or {}
    try:
        key = serialization.load_pem_private_key(base64.b64decode(data.get("tls.key", "")), password=None)
        if _spki(key.public_key()) != _spki(cert.public_key()):
            reasons.append("private key does not match the certificate")
        algorithm, size = _key_facts(key)
        want_alg = str(get_path(spec, "privateKey.algorithm", "RSA") or "RSA")
        want_size = int(get_path(spec, "privateKey.size", 0) or {"RSA": 2048, "ECDSA": 256}.get(want_alg, 0))
        if algorithm != want_alg or (want_size and size != want_size):
            reasons.append(f"private key is {algorithm} {size}, the spec asks {want_alg} {want_size}")
    except (ValueError, TypeError):
        reasons.append("tls.key missing or unreadable")
    dns, uris, ips = _sans(cert)
    if dns != set(spec.get("dnsNames") or []):
        reasons.append(f"DNS names differ (certificate {sorted(dns)}, spec {sorted(spec.get('dnsNames') or [])})")
    if uris != set(spec.get("uris") or []) or ips != set(spec.get("ipAddresses") or []):
        reasons.append("URI or IP SANs differ from the spec")
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if spec.get("commonName") and spec["commonName"] not in cns:
        reasons.append(f"common name differs (spec {spec['commonName']})")
    ann = annotations_of(secret)
    ref = spec.get("issuerRef") or {}
    want = {"cert-manager.io/issuer-name": ref.get("name", ""),
            "cert-manager.io/issuer-kind": ref.get("kind", "Issuer") or "Issuer",
            "cert-manager.io/issuer-group": ref.get("group", "cert-manager.io") or "cert-manager.io"}
    bad = [k.split("/")[1] for k, v in want.items() if ann.get(k, "") != v]
    if bad:
        reasons.append(f"issuer annotations differ from issuerRef ({', '.join(bad)})")
    if now >= renewal_time(spec, cert):
        reasons.append(f"within renewBefore of its expiry ({cert.not_valid_after_utc:%Y-%m-%d})")
    return reasons


def renewal_time(spec: dict[str, Any], cert: x509.Certificate) -> datetime:
    """When cert-manager renews: ``notAfter - renewBefore``, renewBefore defaulting to a third of the duration."""
    duration = parse_duration(str(spec.get("duration", ""))) or (cert.not_valid_after_utc - cert.not_valid_before_utc)
    before = parse_duration(str(spec.get("renewBefore", ""))) or (duration or DEFAULT_DURATION) / 3
    return cert.not_valid_after_utc - before


def predict(certificate: Obj, secret: Obj | None, now: datetime) -> Prediction:
    """Predict what cert-manager does with ``certificate`` once its migrated ``secret`` is on the target."""
    meta = certificate.get("metadata") or {}
    spec = certificate.get("spec") or {}
    cid = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    sid = f"{meta.get('namespace', '')}/{spec.get('secretName', '')}"
    names = tuple(spec.get("dnsNames") or [])
    if secret is None:
        return Prediction(cid, sid, names, "", "", "", "TLS Secret missing on the target")
    try:
        cert = x509.load_pem_x509_certificate(base64.b64decode((secret.get("data") or {}).get("tls.crt", "")))
    except ValueError:
        return Prediction(cid, sid, names, "", "", "", "tls.crt missing or unreadable")
    reasons = _reasons(spec, secret, cert, now.astimezone(UTC))
    return Prediction(cid, sid, names, format(cert.serial_number, "X"), f"{cert.not_valid_after_utc:%Y-%m-%d}",
                      f"{renewal_time(spec, cert):%Y-%m-%d}", "; ".join(reasons))


def serial_of(secret: Obj) -> str:
    """Serial (hex) of a TLS Secret's certificate, '' when unreadable."""
    try:
        raw = base64.b64decode((secret.get("data") or {}).get("tls.crt", ""))
        return format(x509.load_pem_x509_certificate(raw).serial_number, "X")
    except ValueError:
        return ""


def issuances_per_domain(predictions: list[Prediction], acme: set[str]) -> dict[str, int]:
    """Expected new Let's Encrypt certificates per registered domain (re-issues of ACME certificates only)."""
    counts: dict[str, int] = {}
    for p in predictions:
        if p.reissue and p.certificate in acme:
            for domain in sorted({registered_domain(n) for n in p.dns_names}):
                counts[domain] = counts.get(domain, 0) + 1
    return counts
