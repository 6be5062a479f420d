"""Build one API client per cluster from an explicit kubeconfig and context (never the current-context).

Every call made through these clients carries a timeout (the Python client has none by default,
kubernetes-client/python#1961); retries are k3smig's own (``k3smig_lib.k8s.retry``), so urllib3's
silent zero-backoff retries are switched off here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from k3smig_lib.errors import ParameterError
from k3smig_lib.k8s.errors import ApiCall, translate
from k3smig_lib.k8s.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry

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
    cfg.client_go_retries = False  # (newer clients) no hidden Retry-After loop on GET either
    return client.ApiClient(configuration=cfg)


def server_url(api: client.ApiClient) -> str:
    """The API server address ``api`` talks to (for reports; holds no credential)."""
    return str(api.configuration.host)


def request_json(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    call: ApiCall,
    query: Sequence[tuple[str, str]] = (),
    body: Any = None,
    timeout: tuple[float, float] = REQUEST_TIMEOUT,
    text: bool = False,
) -> Any:
    """One raw API call, decoded as plain JSON (dicts, not client models), errors translated once.

    Plain dicts are what ``kubectl get -o yaml`` shows and what the cleaner works on; the typed
    models would drop unknown fields of CRs and rename keys. No retry here: wrap the call in
    :func:`k3smig_lib.k8s.retry.call_with_retry`.

    Args:
        api: client from :func:`api_client`.
        method: HTTP method.
        path: URL path (``/api/v1/namespaces``).
        call: what the call does, for error messages.
        query: query parameters, in order.
        body: JSON body (POST/PUT/PATCH).
        timeout: (connect, read) seconds.
        text: return the body as text instead of decoding JSON (``/readyz`` answers ``ok``).

    Returns:
        The decoded JSON body (or its text).

    Raises:
        ApiRetryableError: 429, 5xx, refused/reset connection, timeout.
        FatalError: any other failure (``SourceError``/``TargetError`` by ``call.side``).
    """
    try:
        req = api.param_serialize(method, path, query_params=list(query) or None,
                                  header_params={"Accept": "application/json", "Content-Type": "application/json"},
                                  body=body, auth_settings=["BearerToken"])
        resp = api.call_api(*req, _request_timeout=timeout)
        data = resp.read()  # may raise a ProtocolError if the connection dies mid-body
        if not 200 <= resp.status <= 299:
            exc = ApiException(status=resp.status, reason=resp.reason)
            exc.headers = resp.headers
            exc.body = data.decode("utf-8", errors="replace") if data else None
            raise exc
        if text:
            return data.decode("utf-8", errors="replace") if data else ""
        return json.loads(data) if data else None
    except Exception as e:  # every client/transport failure is translated exactly once, here
        raise translate(e, call) from e


def call_json(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    call: ApiCall,
    query: Sequence[tuple[str, str]] = (),
    body: Any = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    timeout: tuple[float, float] = REQUEST_TIMEOUT,
) -> Any:
    """:func:`request_json` inside the retry loop: the usual way to make one idempotent call.

    Raises:
        FatalError: a permanent failure, or transient failures beyond ``policy`` (last status named).

    Examples:
        >>> call_json(api, "GET", "/version", call=ApiCall("get", "/version"))  # doctest: +SKIP
        {'major': '1', 'minor': '36', 'gitVersion': 'v1.36.3', ...}
    """
    return call_with_retry(
        lambda: request_json(api, method, path, call=call, query=query, body=body, timeout=timeout),
        what=call.label,
        policy=policy,
    )
