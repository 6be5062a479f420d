"""The sandbox's throw-away PKI: one CA per cluster, serving certificates and the service-account key.

Generated with ``cryptography`` so ``up`` needs no ``openssl`` binary. Everything here protects
servers bound to 127.0.0.1 for the lifetime of one sandbox; keys are written with mode 0600 into
the state folder and removed by ``down``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=30)
_Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class ClusterPki:
    """Paths of one cluster's PKI files, plus the admin bearer token."""

    ca_cert: Path
    ca_key: Path
    apiserver_cert: Path
    apiserver_key: Path
    kwok_cert: Path
    kwok_key: Path
    sa_key: Path
    sa_pub: Path
    tokens_csv: Path
    admin_token: str


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if private:
        path.chmod(0o600)


def _key_pem(key: _Key | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: _Key,
    issuer: tuple[x509.Certificate, _Key] | None,
    sans: list[x509.GeneralName],
) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        usages = [ExtendedKeyUsageOID.SERVER_AUTH]
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _sans(*names: str) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def make_cluster_pki(folder: Path, cluster: str, service_ip: str) -> ClusterPki:
    """Create the CA, serving certificates, service-account key pair and token file of one cluster.

    Args:
        folder: where to write the files (created).
        cluster: cluster name, used in certificate subjects.
        service_ip: first IP of the service range (the ``kubernetes`` Service), added as a SAN.

    Returns:
        The paths and the admin token (the token is only written to ``tokens.csv`` and kubeconfigs).
    """
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert(f"k3smig-sandbox-{cluster}-ca", ca_key, None, [])
    names = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    pem = serialization.Encoding.PEM
    chain = ca.public_bytes(pem)
    files = {"ca.crt": chain, "ca.key": _key_pem(ca_key)}
    for name, sans in (
        ("apiserver", _sans("127.0.0.1", "localhost", service_ip, *names)),
        ("kwok", _sans("127.0.0.1", "localhost")),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{name}.crt"] = _cert(name, key, (ca, ca_key), sans).public_bytes(pem) + chain
        files[f"{name}.key"] = _key_pem(key)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files["sa.key"] = _key_pem(sa_key)
    files["sa.pub"] = sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = secrets.token_hex(24)
    files["tokens.csv"] = f'{token},k3smig-admin,k3smig-admin,"system:masters"\n'.encode()
    for name, data in files.items():
        _write(folder / name, data, private=name.endswith((".key", ".csv")))
    return ClusterPki(
        ca_cert=folder / "ca.crt", ca_key=folder / "ca.key",
        apiserver_cert=folder / "apiserver.crt", apiserver_key=folder / "apiserver.key",
        kwok_cert=folder / "kwok.crt", kwok_key=folder / "kwok.key",
        sa_key=folder / "sa.key", sa_pub=folder / "sa.pub",
        tokens_csv=folder / "tokens.csv", admin_token=token,
    )  # fmt: skip
