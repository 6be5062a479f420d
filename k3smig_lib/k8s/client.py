"""Build one API client per cluster from an explicit kubeconfig and context (never the current-context).

Every call made through these clients carries a timeout (the Python client has none by default,
kubernetes-client/python#1961); retries are k3smig's own (``k3smig_lib.k8s.retry``), so urllib3's
silent zero-backoff retries are switched off here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from k3smig_lib.errors import ParameterError

#: (connect, read) seconds for every request; watches and exec streams set their own.
REQUEST_TIMEOUT = (10.0, 60.0)


@dataclass(frozen=True)
class ClusterRef:
    """Which cluster a client talks to: the kubeconfig file and the context inside it."""

    kubeconfig: str
    context: str
    side: str = ""  # "source" or "target", for messages


def api_client(ref: ClusterRef) -> client.ApiClient:
    """An ``ApiClient`` for exactly ``ref.context`` of ``ref.kubeconfig``.

    Raises:
        ParameterError: the kubeconfig or context is missing or unreadable (named, with the fix).
    """
    side = f"{ref.side}_" if ref.side else ""
    if not ref.context:
        raise ParameterError(f"no {side}context given", fix=f"set {side}context explicitly (k3smig never uses "
                             "the kubeconfig's current-context)")
    path = Path(ref.kubeconfig).expanduser()
    if not path.is_file():
        raise ParameterError(f"kubeconfig {path} does not exist", fix=f"set {side}kubeconfig to a readable file")
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=str(path), context=ref.context, client_configuration=cfg,
                                persist_config=False)
    except ConfigException as e:
        raise ParameterError(f"context {ref.context!r} cannot be loaded from {path}: {str(e)[:200]}",
                             fix=f"pick one of `kubectl config get-contexts --kubeconfig {path}`") from e
    cfg.retries = 0  # our retry loop owns backoff and Retry-After
    return client.ApiClient(configuration=cfg)
