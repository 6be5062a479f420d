"""Manifest shapes the application modules share (as their authors would have written them)."""

from __future__ import annotations

from _gen.common import Obj


def claim(
    ns: str,
    name: str,
    labels: dict[str, str],
    size: str,
    *,
    storage_class: str = "scw-bssd",
    mode: str = "ReadWriteOnce",
) -> Obj:
    """A PersistentVolumeClaim manifest."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {
            "accessModes": [mode],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
        },
    }


def app_deployment(
    ns: str,
    name: str,
    labels: dict[str, str],
    pod_spec: Obj,
    *,
    replicas: int | None = 1,
    recreate: bool = False,
    selector: dict[str, str] | None = None,
) -> Obj:
    """A Deployment manifest; ``replicas=None`` leaves the count to an autoscaler."""
    spec: Obj = {
        "selector": {"matchLabels": dict(selector or labels)},
        "template": {"metadata": {"labels": dict(labels)}, "spec": pod_spec},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    if recreate:
        spec["strategy"] = {"type": "Recreate"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": spec,
    }


def secret_env(name: str, secret: str, key: str) -> Obj:
    """An environment variable read from a Secret key."""
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def ingress(
    ns: str,
    name: str,
    labels: dict[str, str],
    host: str,
    backend: tuple[str, Obj],
    *,
    annotations: dict[str, str] | None = None,
    class_name: str = "",
) -> Obj:
    """An Ingress for one host with TLS from the Secret ``<name>-tls``; ``backend`` is ``(service, port)``."""
    path = {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": backend[0], "port": backend[1]}}}
    spec: Obj = {
        "tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
        "rules": [{"host": host, "http": {"paths": [path]}}],
    }
    if class_name:
        spec["ingressClassName"] = class_name
    meta: Obj = {"name": name, "namespace": ns, "labels": dict(labels)}
    if annotations:
        meta["annotations"] = dict(annotations)
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def service(ns: str, name: str, labels: dict[str, str], selector: dict[str, str], ports: list[Obj]) -> Obj:
    """A ClusterIP Service manifest."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
        "spec": {"selector": dict(selector), "ports": ports},
    }
