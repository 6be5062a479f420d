"""Typed doors into the ``kubernetes`` client for the sandbox modules.

``kubernetes.config`` and ``kubernetes.dynamic`` carry no annotations; the two calls into them live
here, so the rest of the package stays ``mypy --strict`` clean without scattered ignores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient


def api_client(kubeconfig: Path, context: str | None = None) -> client.ApiClient:
    """An API client for ``context`` of ``kubeconfig`` (its current context when None)."""
    return cast(client.ApiClient, config.new_client_from_config(config_file=str(kubeconfig), context=context))


def dynamic_client(api: client.ApiClient, cache_file: Path) -> Any:
    """A discovery-backed client for any kind; discovery is cached in ``cache_file`` (one per cluster)."""
    return DynamicClient(api, cache_file=str(cache_file))
