"""Deterministic RSA keys, X.509 certificates and service-account JWTs for the example.

``cryptography`` draws keys from the OS RNG, so the primes are searched here with a seeded
generator and turned into a key with ``RSAPrivateNumbers``. RSA PKCS#1 v1.5 signatures are
deterministic, so certificates and tokens signed with these keys are byte-stable too.
"""

from __future__ import annotations

import base64
import functools
import json
import random
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from _gen.common import det_bytes

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % d for d in range(2, int(p**0.5) + 1))]
_E = 65537


def _is_probable_prime(n: int, rng: random.Random) -> bool:
    if any(n % p == 0 for p in _SMALL_PRIMES):
        return n in _SMALL_PRIMES
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for _ in range(24):
        x = pow(rng.randrange(2, n - 2), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(rng: random.Random, bits: int) -> int:
    while True:
        candidate = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (candidate - 1) % _E and _is_probable_prime(candidate, rng):
            return candidate


@functools.cache
def rsa_key(label: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """Return an RSA key that depends only on ``label``."""
    rng = random.Random(det_bytes("rsa:" + label, 32))
    p = _prime(rng, bits // 2)
    q = _prime(rng, bits // 2)
    while q == p:
        q = _prime(rng, bits // 2)
    p, q = max(p, q), min(p, q)
    d = pow(_E, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=d % (p - 1),
        dmq1=d % (q - 1),
        iqmp=pow(q, -1, p),
        public_numbers=rsa.RSAPublicNumbers(_E, p * q),
    )
    return numbers.private_key()


def private_pem(key: rsa.RSAPrivateKey, *, pkcs8: bool = False) -> str:
    """PEM of ``key``: PKCS#1 (``RSA PRIVATE KEY``) by default, as cert-manager and kubeadm write it."""
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    """PEM (SubjectPublicKeyInfo) of the public half of ``key``."""
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pub.decode()


def _when(ts: str) -> datetime:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class CertSpec:
    """What goes into one certificate."""

    common_name: str
    not_before: str
    not_after: str
    dns_names: tuple[str, ...] = ()
    organization: str = ""
    is_ca: bool = False


def _name(spec: CertSpec) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization)] if spec.organization else []
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])


def certificate(
    spec: CertSpec,
    key: rsa.RSAPrivateKey,
    issuer: CertSpec | None = None,
    issuer_key: rsa.RSAPrivateKey | None = None,
) -> str:
    """Return the PEM of a certificate for ``key``, self-signed unless an issuer is given."""
    issuer_spec, signer = (issuer, issuer_key) if issuer and issuer_key else (spec, key)
    serial = int.from_bytes(det_bytes("serial:" + spec.common_name + spec.not_before, 16), "big") >> 1
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec))
        .issuer_name(_name(issuer_spec))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(_when(spec.not_before))
        .not_valid_after(_when(spec.not_after))
        .add_extension(x509.BasicConstraints(ca=spec.is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if spec.is_ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        usage = x509.KeyUsage(True, False, True, False, False, False, False, False, False)
        builder = builder.add_extension(usage, critical=True).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
    if spec.dns_names:
        sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.dns_names])
        builder = builder.add_extension(sans, critical=False)
    cert = builder.sign(signer, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_rs256(claims: dict[str, object], key: rsa.RSAPrivateKey, kid: str) -> str:
    """A compact RS256 JWT over ``claims`` (what a legacy service-account token Secret holds)."""
    header = {"alg": "RS256", "kid": kid}
    signing_input = ".".join(_b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + _b64url(signature)


def csr_pem(key: rsa.RSAPrivateKey, common_name: str, dns_names: tuple[str, ...]) -> str:
    """A PKCS#10 request like the one cert-manager sends to the ACME issuer."""
    sans = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(sans, critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()
