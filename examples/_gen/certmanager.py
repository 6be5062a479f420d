"""cert-manager's footprint in an application namespace: Certificate, CertificateRequest, TLS Secret.

The issuer is the ACME ClusterIssuer ``letsencrypt-prod``. The certificates are real X.509 but signed
by a fake intermediate, so they verify nowhere. cert-manager runs with
``--enable-certificate-owner-ref``: each TLS Secret is owned by its Certificate, which makes a naive
"drop everything owned" cleaner throw the Secret away and re-issue (docs/cleaning-rules.md KEEP4).
"""

from __future__ import annotations

from dataclasses import dataclass

from _gen import pki
from _gen.common import EXPORTED_AT, Obj, b64, ts_add, uid
from _gen.server import KUBECTL, Cluster, Write, applied, object_uid, owner_ref

ISSUER_NAME = "letsencrypt-prod"
_ISSUER_REF = {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": ISSUER_NAME}
_USAGES = ["digital signature", "key encipherment"]
_INTERMEDIATE = pki.CertSpec(
    "(FAKE) Example ACME R11",
    "2024-03-13T00:00:00Z",
    "2027-03-12T23:59:59Z",
    organization="(FAKE) Example ACME CA, not trusted anywhere",
    is_ca=True,
)


@dataclass(frozen=True)
class Issued:
    """One certificate as it stands at export time."""

    namespace: str
    name: str
    dns_names: tuple[str, ...]
    created: str
    issued: str
    revision: int
    owner: Obj | None = None


def before_now(days: int, seconds: int = 0) -> str:
    """An issue time relative to the example's pinned "now" (its export time, ``EXPORTED_AT``).

    Certificates are dated from the export, not from the calendar: a run judges them at the same pinned
    time (``as_of`` in parameters/demo.yaml and sandbox.yaml), so reports say "kept" year after year.
    """
    return ts_add(EXPORTED_AT, -(days * 86_400 + seconds))


def _dates(issued: str) -> tuple[str, str, str]:
    return issued, ts_add(issued, 90 * 86_400 - 1), ts_add(issued, 60 * 86_400 - 1)


def tls_material(cert: Issued) -> tuple[str, str]:
    """``(tls.crt chain, tls.key)`` PEM text for ``cert``."""
    key = pki.rsa_key(f"tls:{cert.namespace}/{cert.name}")
    not_before, not_after, _ = _dates(cert.issued)
    leaf_spec = pki.CertSpec(cert.dns_names[0], not_before, not_after, cert.dns_names)
    intermediate_key = pki.rsa_key("fake-acme-intermediate")
    leaf = pki.certificate(leaf_spec, key, _INTERMEDIATE, intermediate_key)
    return leaf + pki.certificate(_INTERMEDIATE, intermediate_key), pki.private_pem(key)


def issue(c: Cluster, cert: Issued) -> Obj:
    """Create the Certificate, its latest CertificateRequest and the TLS Secret it produced."""
    meta: Obj = {"name": cert.name, "namespace": cert.namespace}
    if cert.owner is not None:
        meta["ownerReferences"] = [owner_ref(cert.owner)]
    manifest: Obj = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta,
        "spec": {
            "dnsNames": list(cert.dns_names),
            "issuerRef": dict(_ISSUER_REF),
            "secretName": cert.name,
            "usages": list(_USAGES),
        },
    }
    not_before, not_after, renewal = _dates(cert.issued)
    ready = {
        "lastTransitionTime": ts_add(cert.created, 62),
        "message": "Certificate is up to date and has not expired",
        "observedGeneration": 1,
        "reason": "Ready",
        "status": "True",
        "type": "Ready",
    }
    status = {
        "conditions": [ready],
        "notAfter": not_after,
        "notBefore": not_before,
        "renewalTime": renewal,
        "revision": cert.revision,
    }
    manager = "cert-manager-ingress-shim" if cert.owner is not None else KUBECTL
    certificate = applied(
        c,
        manifest,
        cert.created,
        manager=manager,
        writes=(Write("cert-manager-certificates-issuing", ts_add(cert.issued, 3), {"status": status}, "status"),),
    )
    chain, key = tls_material(cert)
    _request(c, certificate, cert, chain)
    _tls_secret(c, certificate, cert, chain, key)
    return certificate


def _condition(kind: str, reason: str, message: str, when: str) -> Obj:
    return {"lastTransitionTime": when, "message": message, "reason": reason, "status": "True", "type": kind}


def _request(c: Cluster, certificate: Obj, cert: Issued, chain: str) -> Obj:
    key = pki.rsa_key(f"tls:{cert.namespace}/{cert.name}")
    sa_uid = object_uid({"kind": "ServiceAccount", "metadata": {"namespace": "cert-manager", "name": "cert-manager"}})
    annotations = {
        "cert-manager.io/certificate-name": cert.name,
        "cert-manager.io/certificate-revision": str(cert.revision),
        "cert-manager.io/private-key-secret-name": f"{cert.name}-{uid(cert.name)[:5]}",
    }
    meta: Obj = {"name": f"{cert.name}-{cert.revision}", "namespace": cert.namespace, "annotations": annotations}
    spec = {
        "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={uid('jti', cert.name)}"]},
        "groups": ["system:serviceaccounts", "system:serviceaccounts:cert-manager", "system:authenticated"],
        "issuerRef": dict(_ISSUER_REF),
        "request": b64(pki.csr_pem(key, cert.dns_names[0], cert.dns_names)),
        "uid": sa_uid,
        "usages": list(_USAGES),
        "username": "system:serviceaccount:cert-manager:cert-manager",
    }
    manifest: Obj = {"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest", "metadata": meta, "spec": spec}
    meta["ownerReferences"] = [owner_ref(certificate)]
    approved = _condition(
        "Approved", "cert-manager.io", "Certificate request has been approved by cert-manager.io", cert.issued
    )
    ready = _condition("Ready", "Issued", "Certificate fetched from issuer successfully", ts_add(cert.issued, 2))
    status = {"certificate": b64(chain), "conditions": [approved, ready]}
    write = Write("cert-manager-certificaterequests-issuer-acme", ts_add(cert.issued, 2), {"status": status}, "status")
    return applied(
        c, manifest, ts_add(cert.issued, -20), manager="cert-manager-certificates-request-manager", writes=(write,)
    )


def _tls_secret(c: Cluster, certificate: Obj, cert: Issued, chain: str, key: str) -> Obj:
    annotations = {
        "cert-manager.io/alt-names": ",".join(cert.dns_names),
        "cert-manager.io/certificate-name": cert.name,
        "cert-manager.io/common-name": cert.dns_names[0],
        "cert-manager.io/ip-sans": "",
        "cert-manager.io/issuer-group": "cert-manager.io",
        "cert-manager.io/issuer-kind": "ClusterIssuer",
        "cert-manager.io/issuer-name": ISSUER_NAME,
        "cert-manager.io/uri-sans": "",
    }
    manifest: Obj = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": cert.name,
            "namespace": cert.namespace,
            "annotations": annotations,
            "labels": {"controller.cert-manager.io/fao": "true"},
            "ownerReferences": [owner_ref(certificate)],
        },
        "data": {"tls.crt": b64(chain), "tls.key": b64(key)},
    }
    return applied(c, manifest, ts_add(cert.created, 61), manager="cert-manager-certificates-issuing")
