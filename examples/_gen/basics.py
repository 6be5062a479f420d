"""What every namespace holds without anyone asking: the Namespace, ``default`` ServiceAccount,
``kube-root-ca.crt`` ConfigMap; plus ServiceAccounts, legacy token Secrets and plain Secrets/ConfigMaps.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from cryptography.hazmat.primitives import serialization

from _gen import pki
from _gen.common import CLUSTER_CREATED, Obj, b64, ts_add
from _gen.server import KCM, KUBECTL, Cluster, Write, applied, object_uid

_ROOT_CA_NOTE = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as "
    "the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of "
    "Kubernetes clusters."
)


@functools.cache
def cluster_ca_pem() -> str:
    """The cluster CA certificate (what ``kube-root-ca.crt`` and token Secrets carry)."""
    spec = pki.CertSpec("kubernetes", ts_add(CLUSTER_CREATED, -300), "2034-02-02T08:09:21Z", is_ca=True)
    return pki.certificate(spec, pki.rsa_key("cluster-ca"))


def namespace(
    c: Cluster, name: str, created: str, *, labels: dict[str, str] | None = None, manager: str = KUBECTL
) -> Obj:
    """Create a Namespace with its ``default`` ServiceAccount and ``kube-root-ca.crt`` ConfigMap."""
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = dict(labels)
    ns = applied(c, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}, created, manager=manager)
    ns["status"] = {"phase": "Active"}
    applied(
        c,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": name}},
        ts_add(created, 1),
        manager=KCM,
    )
    root_ca = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "data": {"ca.crt": cluster_ca_pem()},
        "metadata": {
            "name": "kube-root-ca.crt",
            "namespace": name,
            "annotations": {"kubernetes.io/description": _ROOT_CA_NOTE},
        },
    }
    applied(c, root_ca, ts_add(created, 1), manager=KCM)
    return ns


def service_account(
    c: Cluster,
    namespace_name: str,
    name: str,
    created: str,
    *,
    manager: str = KUBECTL,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    image_pull_secrets: list[str] | None = None,
) -> Obj:
    """Create a ServiceAccount."""
    meta: Obj = {"name": name, "namespace": namespace_name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    manifest: Obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if image_pull_secrets:
        manifest["imagePullSecrets"] = [{"name": s} for s in image_pull_secrets]
    return applied(c, manifest, created, manager=manager)


def _key_id() -> str:
    der = (
        pki.rsa_key("sa-signer")
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def token_secret(c: Cluster, namespace_name: str, sa_name: str, name: str, created: str, last_used: str) -> Obj:
    """Create a long-lived ``kubernetes.io/service-account-token`` Secret the token controller filled."""
    sa_uid = object_uid({"kind": "ServiceAccount", "metadata": {"namespace": namespace_name, "name": sa_name}})
    prefix = "kubernetes.io/serviceaccount/"
    claims: dict[str, object] = {
        "iss": "kubernetes/serviceaccount",
        prefix + "namespace": namespace_name,
        prefix + "secret.name": name,
        prefix + "service-account.name": sa_name,
        prefix + "service-account.uid": sa_uid,
        "sub": f"system:serviceaccount:{namespace_name}:{sa_name}",
    }
    token = pki.jwt_rs256(claims, pki.rsa_key("sa-signer"), _key_id())
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": name,
            "namespace": namespace_name,
            "annotations": {"kubernetes.io/service-account.name": sa_name},
        },
    }
    writes = (
        Write(
            KCM,
            ts_add(created, 1),
            {
                "data": {
                    "ca.crt": b64(cluster_ca_pem()),
                    "namespace": b64(namespace_name),
                    "token": b64(token),
                },
                "metadata": {"annotations": {"kubernetes.io/service-account.uid": sa_uid}},
            },
        ),
        Write(
            "kube-apiserver",
            last_used,
            {"metadata": {"labels": {"kubernetes.io/legacy-token-last-used": last_used[:10]}}},
        ),
    )
    return applied(c, manifest, created, writes=writes)


def secret(
    c: Cluster,
    namespace_name: str,
    name: str,
    created: str,
    data: dict[str, str],
    *,
    secret_type: str = "Opaque",
    labels: dict[str, str] | None = None,
    manager: str = KUBECTL,
    annotations: dict[str, str] | None = None,
) -> Obj:
    """Create a Secret from clear-text ``data`` (stored base64-encoded, as the API does)."""
    meta: Obj = {"name": name, "namespace": namespace_name}
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": meta,
        "data": {k: b64(v) for k, v in data.items()},
    }
    return applied(c, manifest, created, manager=manager)


def config_map(
    c: Cluster,
    namespace_name: str,
    name: str,
    created: str,
    data: dict[str, str],
    *,
    labels: dict[str, str] | None = None,
    manager: str = KUBECTL,
) -> Obj:
    """Create a ConfigMap."""
    meta: Obj = {"name": name, "namespace": namespace_name}
    if labels:
        meta["labels"] = dict(labels)
    return applied(
        c,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": dict(data)},
        created,
        manager=manager,
    )
