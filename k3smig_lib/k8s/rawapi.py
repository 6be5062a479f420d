"""The ``kubernetes`` client's own APIs, for code that drives a cluster it owns: the sandbox.

The migration reaches clusters only through :class:`k3smig_lib.k8s.client.Kube` (explicit context,
timeouts, one retry loop, one error mapping). The sandbox builds, bootstraps and seeds its own local
API servers and uses the client's generated APIs and its dynamic client as they are; this module is
its door to them, so the ``kubernetes`` package is imported inside :mod:`k3smig_lib.k8s` only (an
import-linter contract in ``pyproject.toml`` checks it). An HTTP error of these calls is
:data:`k3smig_lib.k8s.errors.ApiError`, whose ``status`` the caller branches on.

``kubernetes.config`` and ``kubernetes.dynamic`` carry no annotations; the calls into them live here,
so the rest of the package stays ``mypy --strict`` clean without scattered ignores. The generated
API objects are returned as ``Any``: their models make every field Optional, which says nothing
useful to a caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client import ApiClient as ApiClient  # re-exported: callers annotate with it
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError


def api_client(kubeconfig: Path, context: str | None = None) -> ApiClient:
    """An API client for ``context`` of ``kubeconfig`` (its current context when None)."""
    return cast(ApiClient, config.new_client_from_config(config_file=str(kubeconfig), context=context))


def dynamic_client(api: ApiClient, cache_file: Path) -> Any:
    """A discovery-backed client for any kind; discovery is cached in ``cache_file`` (one per cluster)."""
    return DynamicClient(api, cache_file=str(cache_file))


def served_resource(dyn: Any, api_version: str, kind: str) -> Any | None:
    """The dynamic resource of ``kind`` in ``api_version``, or None when the API server does not serve it."""
    try:
        return dyn.resources.get(api_version=api_version, kind=kind)
    except ResourceNotFoundError:
        return None


def core_v1(api: ApiClient) -> Any:
    """The generated ``CoreV1Api`` (nodes, claims, volumes, pods, service accounts) on ``api``."""
    return client.CoreV1Api(api)


def storage_v1(api: ApiClient) -> Any:
    """The generated ``StorageV1Api`` (StorageClasses) on ``api``."""
    return client.StorageV1Api(api)


def custom_objects(api: ApiClient) -> Any:
    """The generated ``CustomObjectsApi`` (kwok's ``Exec`` objects, any CRD) on ``api``."""
    return client.CustomObjectsApi(api)
