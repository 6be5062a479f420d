"""Shared shapes of the Helm-installed platform add-ons (ingress-nginx, cert-manager)."""

from __future__ import annotations

from _gen import helm
from _gen.common import Obj
from _gen.server import helm_managed

#: When the nodes were rebooted by the Kapsule upgrade to v1.31.4 (add-on Pods restarted then).
RESTART = "2025-01-06T11:00:31Z"
_HARDENED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
}


def helm_object(manifest: Obj, chart: helm.Chart, release: str, ns: str) -> Obj:
    """``manifest`` as installed by the release ``release`` of ``chart``."""
    return helm_managed(manifest, release, ns, chart.label, chart.app_version)


def helm_meta(
    labels: dict[str, str], chart: helm.Chart, release: str, ns: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations Helm puts on an object whose chart labels are ``labels``."""
    stub = helm_object({"metadata": {"labels": dict(labels)}}, chart, release, ns)
    return stub["metadata"]["labels"], stub["metadata"]["annotations"]


def controller_deployment(
    name: str, ns: str, container: tuple[str, str], labels: dict[str, str], args: list[str], ports: list[Obj]
) -> Obj:
    """A one-replica controller Deployment as add-on charts render it.

    ``container`` is ``(container name, image)``; the ServiceAccount is the chart's, named after the release
    for ingress-nginx and after the component for cert-manager.
    """
    spec: Obj = {
        "serviceAccountName": "ingress-nginx" if ns == "ingress-nginx" else name,
        "containers": [
            {
                "name": container[0],
                "image": container[1],
                "args": args,
                "ports": ports,
                "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}},
                "securityContext": dict(_HARDENED),
            }
        ],
        "nodeSelector": {"kubernetes.io/os": "linux"},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }


def webhook(name: str, ns: str, service: str, path: str, groups: list[str], resources: list[str]) -> Obj:
    """One admission webhook entry served by ``service``."""
    rule = {
        "apiGroups": groups,
        "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"],
        "resources": resources,
        "scope": "*",
    }
    return {
        "admissionReviewVersions": ["v1"],
        "clientConfig": {"caBundle": "", "service": {"name": service, "namespace": ns, "path": path, "port": 443}},
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "name": name,
        "namespaceSelector": {},
        "objectSelector": {},
        "rules": [rule],
        "sideEffects": "None",
        "timeoutSeconds": 10,
    }


def pods_of(objects: list[Obj], ns: str, labels: dict[str, str]) -> list[Obj]:
    """The Pods in ``ns`` whose labels include ``labels``."""
    return [
        o
        for o in objects
        if o["kind"] == "Pod"
        and o["metadata"]["namespace"] == ns
        and all(o["metadata"]["labels"].get(k) == v for k, v in labels.items())
    ]
