"""cert-manager's six CustomResourceDefinitions, installed by its Helm chart (``crds.enabled=true``).

The OpenAPI schemas are trimmed to the top-level fields (the rest is
``x-kubernetes-preserve-unknown-fields``) so the example stays small; names, scopes, short names,
printer columns and status follow the real CRDs of cert-manager v1.15.
"""

from __future__ import annotations

from _gen.common import Obj, ts_add
from _gen.server import Cluster, Write, applied, helm_managed

CHART = "cert-manager-v1.15.1"
APP_VERSION = "v1.15.1"

#: (plural, kind, group, scope, short names, spec properties)
_CRDS: list[tuple[str, str, str, str, list[str], dict[str, str]]] = [
    (
        "certificates",
        "Certificate",
        "cert-manager.io",
        "Namespaced",
        ["cert", "certs"],
        {
            "commonName": "string",
            "dnsNames": "array",
            "duration": "string",
            "issuerRef": "object",
            "privateKey": "object",
            "renewBefore": "string",
            "secretName": "string",
            "usages": "array",
        },
    ),
    (
        "certificaterequests",
        "CertificateRequest",
        "cert-manager.io",
        "Namespaced",
        ["cr", "crs"],
        {
            "duration": "string",
            "issuerRef": "object",
            "request": "string",
            "usages": "array",
            "username": "string",
            "groups": "array",
            "uid": "string",
            "extra": "object",
        },
    ),
    (
        "issuers",
        "Issuer",
        "cert-manager.io",
        "Namespaced",
        [],
        {"acme": "object", "ca": "object", "selfSigned": "object", "vault": "object"},
    ),
    (
        "clusterissuers",
        "ClusterIssuer",
        "cert-manager.io",
        "Cluster",
        [],
        {"acme": "object", "ca": "object", "selfSigned": "object", "vault": "object"},
    ),
    (
        "orders",
        "Order",
        "acme.cert-manager.io",
        "Namespaced",
        [],
        {"commonName": "string", "dnsNames": "array", "issuerRef": "object", "request": "string"},
    ),
    (
        "challenges",
        "Challenge",
        "acme.cert-manager.io",
        "Namespaced",
        [],
        {
            "authorizationURL": "string",
            "dnsName": "string",
            "issuerRef": "object",
            "key": "string",
            "solver": "object",
            "token": "string",
            "type": "string",
            "url": "string",
            "wildcard": "boolean",
        },
    ),
]


def _property(kind: str) -> Obj:
    if kind == "object":
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if kind == "array":
        return {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "atomic"}
    return {"type": kind}


def _version(kind: str, spec_props: dict[str, str]) -> Obj:
    schema = {
        "openAPIV3Schema": {
            "description": f"{kind} is a cert-manager resource.",
            "type": "object",
            "required": ["spec"],
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {k: _property(v) for k, v in spec_props.items()}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        }
    }
    columns = [
        {"jsonPath": '.status.conditions[?(@.type == "Ready")].status', "name": "Ready", "type": "string"},
        {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"},
    ]
    return {
        "additionalPrinterColumns": columns,
        "name": "v1",
        "schema": schema,
        "served": True,
        "storage": True,
        "subresources": {"status": {}},
    }


def _condition(kind: str, reason: str, message: str, when: str) -> Obj:
    return {"lastTransitionTime": when, "message": message, "reason": reason, "status": "True", "type": kind}


def _manifest(plural: str, group: str, scope: str, names: Obj, version: Obj) -> Obj:
    labels = {"app": "cert-manager", "app.kubernetes.io/component": "crds", "app.kubernetes.io/name": "cert-manager"}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}", "labels": labels, "annotations": {"helm.sh/resource-policy": "keep"}},
        "spec": {
            "conversion": {"strategy": "None"},
            "group": group,
            "names": names,
            "scope": scope,
            "versions": [version],
        },
    }
    return helm_managed(crd, "cert-manager", "cert-manager", CHART, APP_VERSION)


def build(c: Cluster, created: str) -> list[Obj]:
    """Create the CRDs as Helm installed them at ``created``."""
    crds = []
    when = ts_add(created, 1)
    for plural, kind, group, scope, short, props in _CRDS:
        names: Obj = {
            "categories": ["cert-manager"],
            "kind": kind,
            "listKind": f"{kind}List",
            "plural": plural,
            "singular": kind.lower(),
        }
        if short:
            names["shortNames"] = short
        accepted = _condition("NamesAccepted", "NoConflicts", "no conflicts found", when)
        established = _condition("Established", "InitialNamesAccepted", "the initial names have been accepted", when)
        status = {"acceptedNames": names, "conditions": [accepted, established], "storedVersions": ["v1"]}
        write = Write("kube-apiserver", when, {"status": status}, "status")
        manifest = _manifest(plural, group, scope, names, _version(kind, props))
        crds.append(applied(c, manifest, created, manager="helm", writes=(write,)))
    return crds
