"""The one transport to a Kubernetes API server: :class:`Kube`, built from an explicit kubeconfig context.

Reads, writes, discovery, lists, the run lock and (through :attr:`Kube.api`) exec streams all ride on
one ``ApiClient`` per cluster, so they share its configuration (server, CA, credentials) and these rules:

- every request carries a timeout (the Python client has none by default,
  kubernetes-client/python#1961);
- every request goes through the one retry loop (:func:`k3smig_lib.k8s.retry.call_with_retry`), whose
  clock, sleep and random source are the transport's, so tests inject them and never wait for real;
  urllib3's silent zero-backoff retries are switched off here;
- every failure is mapped once, by :func:`k3smig_lib.k8s.errors.translate`, into the ``K3sMigError``
  hierarchy: messages carry the HTTP status, ``Status.reason`` and failing field paths, never a
  response body (which can echo a Secret);
- calls are counted by purpose (:class:`CallCounts`), which phase reports show as the cost of a run.

A caller that handles some statuses itself (a plan reads 404/409/422, the Lease needs 404/409 and the
``Date`` header) names them in ``accept`` and gets an :class:`ApiResponse` back instead of an error.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from k3smig_lib.errors import K3sMigError, ParameterError
from k3smig_lib.k8s.errors import (
    RETRYABLE_STATUSES,
    ApiCall,
    Cause,
    safe_detail,
    status_causes,
    status_reason,
    translate,
)
from k3smig_lib.k8s.ref import ClusterRef as ClusterRef  # re-exported: callers name it from here
from k3smig_lib.k8s.retry import DEFAULT_POLICY, RetryEvent, RetryPolicy, backoff_ceiling, call_with_retry

T = TypeVar("T")

#: (connect, read) seconds for every request; watches and exec streams set their own.
REQUEST_TIMEOUT = (10.0, 60.0)
#: What a call is counted as in :class:`CallCounts`.
Counter = Literal["discovery", "lists", "gets", "applies", "dry_runs", "writes"]
Query = Mapping[str, Any] | Sequence[tuple[str, str]]


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


@dataclass
class CallCounts:
    """API calls made, by purpose: what a report shows as the cost of a run.

    Each request counts once under its purpose, however many attempts it took; every extra attempt
    counts once under ``retries``.
    """

    discovery: int = 0
    lists: int = 0
    gets: int = 0
    applies: int = 0
    dry_runs: int = 0
    writes: int = 0  # other writes (lease create/update/delete, deletes)
    retries: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts as a plain dict (for tables and ``phase_result.json``)."""
        return asdict(self)


_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}
#: Subresources of a namespace, which the path layout would otherwise read as a namespaced resource.
_NAMESPACE_SUBRESOURCES = frozenset({"finalize", "status"})


def _query_pairs(query: Query | None) -> list[tuple[str, str]]:
    if not query:
        return []
    items = query.items() if isinstance(query, Mapping) else query
    return [(str(k), str(v).lower() if isinstance(v, bool) else str(v)) for k, v in items]


def api_call(method: str, path: str, *, query: Query | None = None, side: str = "", context: str = "") -> ApiCall:
    """What a request does, read from its method and URL path: the verb, resource, group and object.

    Error messages and the RBAC fix of a 403 are built from it, so they name exactly the rule the
    API server checked (``patch`` on ``deployments`` in group ``apps``, namespace ``shop``).

    Examples:
        >>> c = api_call("PATCH", "/apis/apps/v1/namespaces/shop/deployments/web")
        >>> (c.verb, c.group, c.resource, c.namespace, c.name)
        ('patch', 'apps', 'deployments', 'shop', 'web')
        >>> api_call("GET", "/api/v1/namespaces/kube-system").label
        'get namespaces/kube-system'
        >>> api_call("POST", "/api/v1/namespaces/shop/pods/web/exec").label
        'create pods/web/exec in ns shop'
        >>> api_call("GET", "/version").label
        'get /version'
    """
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts[:1] == ["api"] and len(parts) > 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:  # /version, /readyz, discovery documents: no RBAC resource, the path is the subject
        return ApiCall(_VERBS.get(method.upper(), method.lower()), path, side=side, context=context)
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 2 and not (len(rest) == 3 and rest[2] in _NAMESPACE_SUBRESOURCES):
        namespace, rest = rest[1], rest[2:]
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else "", "/".join(rest[2:])
    method = method.upper()
    if method == "GET":
        verb = "get" if name else ("watch" if ("watch", "true") in _query_pairs(query) else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _VERBS.get(method, method.lower())
    return ApiCall(verb, resource, group, namespace, name, side=side, context=context, subresource=sub)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


@dataclass(frozen=True)
class ApiResponse:
    """One answer of the API server: status, decoded JSON body, headers, and the call it answered.

    Given back for 2xx statuses and for the statuses a caller listed in ``accept``; the body is data
    for the caller's decision (a plan, a lock), never text for a message: :attr:`reason` and
    :attr:`causes` are what may be shown.

    Attributes:
        status: HTTP status.
        body: the JSON body (``{}`` when empty or not a JSON object).
        headers: response headers (read them with :meth:`header`: names are case-insensitive).
        call: what the request did (for :meth:`error`).
        phrase: the HTTP reason phrase (``Conflict``).
    """

    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    call: ApiCall = ApiCall("get", "")
    phrase: str = ""

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    @property
    def reason(self) -> str:
        """``Status.reason`` of an error body (``Conflict``, ``Invalid``, ``NotFound``…), ``""`` otherwise."""
        return "" if self.ok else status_reason(self.body)

    @property
    def causes(self) -> tuple[Cause, ...]:
        """Field paths and cause reasons of an error body (never the server's messages)."""
        return () if self.ok else status_causes(self.body)

    @property
    def fields(self) -> tuple[str, ...]:
        """The failing field paths (``.spec.replicas``), names only."""
        return tuple(c.field for c in self.causes)

    @property
    def detail(self) -> str:
        """What an error message may say about this answer: ``HTTP 422 Invalid; fields spec.x (FieldValueRequired)``.

        Built from the status, ``Status.reason`` and the causes' field paths and reasons, as
        :func:`~k3smig_lib.k8s.errors.translate` does; never from the server's human messages.
        """
        safe = "" if self.ok else safe_detail(self.body)
        return f"HTTP {self.status}" + (f" {safe}" if safe else "")

    def header(self, name: str) -> str | None:
        """A response header by case-insensitive name (``Date``, ``Retry-After``)."""
        return _header(self.headers, name)

    def error(self) -> K3sMigError:
        """The error this response means, mapped by :func:`~k3smig_lib.k8s.errors.translate`.

        For a status the caller accepted but cannot handle after all (a 409 that is not a race, say),
        so it fails exactly as an unaccepted one would: same class, same safe message, same fix.
        """
        exc = ApiException(status=self.status, reason=self.phrase)
        exc.headers = dict(self.headers)
        exc.body = json.dumps(self.body) if self.body else None
        err = translate(exc, self.call)
        err.__cause__ = exc  # status_of() reads the status back through the chain
        return err


class Kube:
    """The transport to one cluster: an ``ApiClient``, a retry policy, call counts, and injectable time.

    Args:
        api: the ``ApiClient`` (from :func:`api_client`, or one built by a test or a proxy).
        side: ``source`` or ``target``: picks ``SourceError``/``TargetError`` and prefixes messages.
        context: kubeconfig context, named in credential and RBAC errors.
        policy: attempts, backoff and deadline of every request.
        timeout: (connect, read) seconds of every request.
        sleep: waits between attempts (tests pass a fake that only advances a fake clock).
        clock: monotonic seconds (the retry deadline).
        rand: uniform ``[0, 1)`` source of the backoff jitter.
        counts: where calls are counted (a new :class:`CallCounts` by default).

    Examples:
        >>> kube = Kube.of(ClusterRef("~/.kube/config", "k3s-vm", "target"))  # doctest: +SKIP
        >>> kube.json("GET", "/version", counter="gets")["gitVersion"]  # doctest: +SKIP
        'v1.33.4+k3s1'
    """

    def __init__(
        self,
        api: client.ApiClient,
        *,
        side: str = "",
        context: str = "",
        policy: RetryPolicy = DEFAULT_POLICY,
        timeout: tuple[float, float] = REQUEST_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        counts: CallCounts | None = None,
    ) -> None:
        self._api = api
        self.side, self.context, self.policy, self.timeout = side, context, policy, timeout
        self.sleep, self.clock, self.rand = sleep, clock, rand
        self.counts = counts if counts is not None else CallCounts()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, ref: ClusterRef, **kw: Any) -> Kube:
        """The transport for ``ref`` (its kubeconfig context, side and context name).

        Raises:
            ParameterError: the kubeconfig or context is missing or unreadable.
        """
        return cls(api_client(ref), side=ref.side, context=ref.context, **kw)

    @property
    def api(self) -> client.ApiClient:
        """The underlying ``ApiClient``: exec streams (``kubernetes.stream``) use the same configuration."""
        return self._api

    @property
    def host(self) -> str:
        """The API server URL (for reports; holds no credential)."""
        return server_url(self._api)

    def count(self, counter: Counter | Literal["retries"], n: int = 1) -> None:
        """Add ``n`` to one of :attr:`counts` (thread-safe: plans, lists and discovery run in threads)."""
        with self._lock:
            setattr(self.counts, counter, getattr(self.counts, counter) + n)

    def call(self, method: str, path: str, query: Query | None = None) -> ApiCall:
        """The :class:`ApiCall` of a request on this cluster (side and context filled in)."""
        return api_call(method, path, query=query, side=self.side, context=self.context)

    def retry(self, fn: Callable[[], T], *, what: str, policy: RetryPolicy | None = None) -> T:
        """Run ``fn`` in the one retry loop, with this transport's time sources; retries are counted.

        For work that is not a single request but must retry the same way (an exec stream later).
        """
        def on_retry(event: RetryEvent) -> None:
            self.count("retries")

        return call_with_retry(fn, what=what, policy=policy or self.policy, sleep=self.sleep, clock=self.clock,
                               rand=self.rand, on_retry=on_retry)

    def backoff(self, attempt: int, policy: RetryPolicy | None = None) -> float:
        """Wait a full-jitter backoff after failed attempt ``attempt`` (1-based); return the seconds waited.

        For loops that retry a decision rather than a request (re-planning after a write conflict):
        same bounds as the retry loop, same injectable sleep, so no test waits for real.
        """
        delay = self.rand() * backoff_ceiling(policy or self.policy, attempt)
        self.sleep(delay)
        return delay

    def request(
        self,
        method: str,
        path: str,
        *,
        counter: Counter,
        query: Query | None = None,
        body: Any = None,
        content_type: str = "application/json",
        accept: Collection[int] = (),
        call: ApiCall | None = None,
        policy: RetryPolicy | None = None,
        on_attempt: Callable[[], None] | None = None,
    ) -> ApiResponse:
        """Send one request through the retry loop; return the response for 2xx and ``accept`` statuses.

        Args:
            method: HTTP method.
            path: URL path (``/api/v1/namespaces/shop/secrets/db``).
            counter: what the call counts as in :attr:`counts`.
            query: query parameters (a mapping, or pairs in order).
            body: JSON-serialisable body (POST/PUT/PATCH, DELETE options).
            content_type: ``application/apply-patch+yaml`` for server-side apply.
            accept: error statuses the caller handles itself (404, 409, 422…); 429 and 5xx are always
                retried, never given back.
            call: what the request does, for messages; read from ``method`` and ``path`` when omitted.
            policy: retry policy of this request (default: the transport's).
            on_attempt: told about every HTTP attempt (per-operation call figures).

        Returns:
            The response (status, JSON body, headers).

        Raises:
            ConflictError: 409 not in ``accept``.
            SourceError | TargetError | FatalError: any other failure (403 names the RBAC rule to grant),
                or transient failures (429, 5xx, reset, timeout) beyond the retry policy, with the last
                status named.
        """
        call = call or self.call(method, path, query)
        pairs = _query_pairs(query)
        accepted = frozenset(accept) - RETRYABLE_STATUSES
        self.count(counter)

        def attempt() -> ApiResponse:
            if on_attempt is not None:
                on_attempt()
            resp = self._exchange(method, path, pairs, body, content_type, call)
            if resp.ok or resp.status in accepted:
                return resp
            raise resp.error()

        return self.retry(attempt, what=call.label, policy=policy)

    def json(
        self,
        method: str,
        path: str,
        *,
        counter: Counter,
        query: Query | None = None,
        body: Any = None,
        call: ApiCall | None = None,
    ) -> dict[str, Any]:
        """:meth:`request` for the common case: the JSON body of a 2xx answer, any error raised."""
        return self.request(method, path, counter=counter, query=query, body=body, call=call).body

    def _exchange(self, method: str, path: str, query: list[tuple[str, str]], body: Any, content_type: str,
                  call: ApiCall) -> ApiResponse:
        """One HTTP exchange; transport failures (refused, reset, timed out, cut body) are translated."""
        try:
            req = self._api.param_serialize(method, path, query_params=query or None,
                                            header_params={"Accept": "application/json", "Content-Type": content_type},
                                            body=body, auth_settings=["BearerToken"])
            raw = self._api.call_api(*req, _request_timeout=self.timeout)
            data = raw.read()  # may raise a ProtocolError if the connection dies mid-body
        except Exception as e:  # every client/transport failure is translated exactly once, here
            raise translate(e, call) from e
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {}
        headers = {str(k): str(v) for k, v in dict(raw.headers or {}).items()}
        return ApiResponse(int(raw.status), decoded if isinstance(decoded, dict) else {}, headers, call,
                           str(raw.reason or ""))
