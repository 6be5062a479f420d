"""Server-side apply of plain-dict objects, for any kind, with a plan that never writes.

Every write is a server-side apply (``PATCH`` with ``application/apply-patch+yaml``,
``fieldManager=k3smig``), so re-applying the same desired state is a no-op the API server itself
recognises, and fields owned by someone else are reported instead of silently overwritten
(RELIABILITY-CASES §4.1). The plan is a server-side dry run (``dryRun=All``) of the same request:
what the API server *would* store is compared with what it stores now, ignoring metadata noise.

Requests go through :class:`Rest`, which reads the raw response (so an error body that echoes a
Secret never reaches an exception), counts calls, retries 429/5xx/connection resets with bounded
backoff that honours ``Retry-After``, and maps HTTP statuses to the ``K3sMigError`` hierarchy.
The mapping here is private to the write side until ``k3smig_lib.k8s.errors`` takes it over.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import urllib3

from k3smig_lib.core.objects import Obj, ObjRef, deep_copy, ref
from k3smig_lib.errors import RetryableError, TargetError
from k3smig_lib.k8s.client import REQUEST_TIMEOUT

FIELD_MANAGER = "k3smig"
APPLY_PATCH = "application/apply-patch+yaml"
#: Metadata the API server maintains: never sent, never compared.
NOISE_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
Counter = Literal["discovery", "lists", "gets", "applies", "dry_runs", "writes"]
PlanAction = Literal["create", "update", "unchanged", "conflict"]


@dataclass
class CallCounts:
    """API calls made, by purpose: what a report shows as the cost of a run."""

    discovery: int = 0
    lists: int = 0
    gets: int = 0
    applies: int = 0
    dry_runs: int = 0
    writes: int = 0  # other writes (lease create/update/delete)
    retries: int = 0

    def as_dict(self) -> dict[str, int]:
        """Counts as a plain dict (for tables and ``phase_result.json``)."""
        return asdict(self)


class ApiCallError(TargetError):
    """The API server answered a request with an error status (or not at all).

    Attributes:
        status: HTTP status (0 when the server could not be reached).
        reason: ``Status.reason`` (``Conflict``, ``Invalid``, ``NotFound``…).
        fields: field paths named by the server (``.spec.replicas``), never values.
    """

    def __init__(self, message: str, *, status: int, reason: str = "", fields: tuple[str, ...] = (),
                 fix: str = "", resource: str = "", namespace: str = "") -> None:
        self.status = status
        self.reason = reason
        self.fields = fields
        super().__init__(message, fix=fix, resource=resource, namespace=namespace)


class RetryableApiError(ApiCallError, RetryableError):
    """A 429, 5xx or broken connection that persisted through the bounded retries."""


_FIXES = {
    401: "check the credentials of the kubeconfig context (expired token or certificate?)",
    403: "grant this verb on this resource to the context's user (RBAC), then re-run",
    404: "check that the namespace and the API group exist on the cluster",
    409: "re-run: another client changed the object meanwhile, or pass existing=update to take it over",
    422: "fix the object (it is invalid for this API server) or remove it from the migration",
}


@dataclass(frozen=True)
class Response:
    """A decoded API response: status, JSON body (``{}`` when not JSON) and headers."""

    status: int
    body: Obj
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300


def status_fields(body: Obj) -> tuple[str, ...]:
    """Field paths from a ``Status`` body's ``details.causes`` (names only, never values)."""
    causes = (body.get("details") or {}).get("causes") or []
    return tuple(str(c.get("field")) for c in causes if c.get("field"))


def api_error(resp: Response, what: ObjRef | None = None, *, secret: bool = False) -> ApiCallError:
    """Map an error response to :class:`ApiCallError` (or :class:`RetryableApiError`).

    The server's message is kept (cut) except for Secrets, whose error bodies may echo values:
    for them only status, reason and field names are shown (RELIABILITY-CASES case 28).
    """
    reason = str(resp.body.get("reason") or "")
    message = f"the API server answered {resp.status} {reason}".rstrip()
    if not secret and resp.body.get("message"):
        message += f": {resp.body['message']}"
    elif status_fields(resp.body):
        message += f" (fields: {', '.join(status_fields(resp.body))})"
    cls = RetryableApiError if resp.status in RETRY_STATUSES else ApiCallError
    return cls(message, status=resp.status, reason=reason, fields=status_fields(resp.body),
               fix=_FIXES.get(resp.status, "retry later; if it persists, check the API server's health"),
               resource=f"{what.kind.lower()}/{what.name}" if what else "", namespace=what.namespace if what else "")


def _retry_after(resp: Response, attempt: int) -> float:
    """Seconds to wait: ``Retry-After`` when given (capped), else exponential backoff with jitter."""
    header = resp.headers.get("Retry-After", "")
    if header.isdigit():
        return min(float(header), 30.0)
    return float(min(0.25 * 2**attempt, 8.0) * (0.5 + random.random() / 2))


class Rest:
    """JSON requests against one API server, counted, bounded-retried, never raising on a status.

    Args:
        api: an ``ApiClient`` from :func:`k3smig_lib.k8s.client.api_client`.
        counts: where calls are counted (shared by everything that talks to this cluster).
        attempts: tries per request for 429/5xx/connection errors.
    """

    def __init__(self, api: Any, counts: CallCounts | None = None, *, attempts: int = 4) -> None:
        self.api = api
        self.counts = counts if counts is not None else CallCounts()
        self.attempts = attempts
        self._lock = threading.Lock()

    def _count(self, counter: str) -> None:
        with self._lock:  # plans and lists run in threads
            setattr(self.counts, counter, getattr(self.counts, counter) + 1)

    @property
    def host(self) -> str:
        """The API server URL."""
        return str(self.api.configuration.host)

    def call(self, method: str, path: str, *, counter: Counter, query: Mapping[str, Any] | None = None,
             body: Obj | None = None, content_type: str = "application/json") -> Response:
        """Send one request (retried on transient failures) and return the response, whatever its status.

        Raises:
            RetryableApiError: the server stayed unreachable, or kept answering 429/5xx.
        """
        self._count(counter)
        url_path = path + ("?" + urlencode(query) if query else "")
        resp = Response(0, {})
        for attempt in range(self.attempts):
            if attempt:
                self._count("retries")
                time.sleep(_retry_after(resp, attempt))
            try:
                resp = self._once(method, url_path, body, content_type)
            except (urllib3.exceptions.HTTPError, OSError) as e:
                resp = Response(0, {"message": f"{type(e).__name__}: {str(e)[:160]}"})
            if resp.status and resp.status not in RETRY_STATUSES:
                return resp
        if resp.status:
            return resp
        raise RetryableApiError(f"{method} {path} failed {self.attempts} times: {resp.body['message']}", status=0,
                                fix=f"check that the API server {self.host} is reachable")

    def _once(self, method: str, url_path: str, body: Obj | None, content_type: str) -> Response:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        _, url, headers, body, _ = self.api.param_serialize(method, url_path, header_params=headers, body=body,
                                                            auth_settings=["BearerToken"])
        raw = self.api.call_api(method, url, headers, body, _request_timeout=REQUEST_TIMEOUT)
        data = raw.read()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {}
        return Response(raw.status, decoded if isinstance(decoded, dict) else {}, dict(raw.headers))


def apply_body(obj: Obj) -> Obj:
    """What is sent for ``obj``: no status, no server-maintained metadata (``resourceVersion`` is a precondition)."""
    body = deep_copy(obj)
    body.pop("status", None)
    meta = body.setdefault("metadata", {})
    for key in NOISE_METADATA:
        meta.pop(key, None)
    return body


def comparable(obj: Obj) -> Obj:
    """``obj`` without status and metadata noise: two objects equal here are the same desired state."""
    out = apply_body(obj)
    meta = out["metadata"]
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)
    return out


def differing_fields(live: Obj, wanted: Obj, *, depth: int = 3) -> list[str]:
    """Dotted paths (at most ``depth`` deep) where two objects differ; paths only, never values.

    Examples:
        >>> differing_fields({"spec": {"replicas": 2, "x": 1}}, {"spec": {"replicas": 3, "x": 1}})
        ['spec.replicas']
        >>> differing_fields({"data": {"a": "b"}}, {"data": {"a": "c", "k": "v"}})
        ['data.a', 'data.k']
    """
    return _diff(comparable(live), comparable(wanted), "", depth)


def _diff(a: Any, b: Any, prefix: str, depth: int) -> list[str]:
    if a == b:
        return []
    if depth == 0 or not (isinstance(a, dict) and isinstance(b, dict)):
        return [prefix or "(root)"]
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else str(key), depth - 1)
    return out


def managed_by(obj: Obj, manager: str = FIELD_MANAGER) -> bool:
    """True when ``manager`` owns fields of ``obj`` (an entry in ``metadata.managedFields``)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return any(e.get("manager") == manager for e in entries)


def other_managers(obj: Obj, manager: str = FIELD_MANAGER) -> list[str]:
    """Field managers of ``obj`` other than ``manager`` (who else wrote the object)."""
    entries = (obj.get("metadata") or {}).get("managedFields") or []
    return sorted({str(e.get("manager")) for e in entries if e.get("manager") != manager})


@dataclass(frozen=True)
class ResourceInfo:
    """One served resource: how to address objects of a kind.

    Examples:
        >>> ResourceInfo("apps/v1", "Deployment", "deployments", True).path("shop", "web")
        '/apis/apps/v1/namespaces/shop/deployments/web'
    """

    group_version: str
    kind: str
    plural: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()

    def path(self, namespace: str = "", name: str = "") -> str:
        """URL path of the collection (``name`` empty) or of one object."""
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.plural}" + (f"/{name}" if name else "")


class Resources:
    """A small discovery cache: ``(apiVersion, kind)`` → :class:`ResourceInfo`, one request per group-version.

    A kind missing from the cache refetches its group-version once (a CRD just established adds it).
    """

    def __init__(self, rest: Rest) -> None:
        self.rest = rest
        self._by_gv: dict[str, dict[str, ResourceInfo]] = {}

    def lookup(self, api_version: str, kind: str) -> ResourceInfo | None:
        """The resource serving ``kind`` in ``api_version``, or None when the cluster does not serve it.

        Raises:
            ApiCallError: discovery itself failed (other than 404).
        """
        found = self._by_gv.get(api_version, {}).get(kind)
        if found is None:
            self._by_gv[api_version] = self._fetch(api_version)
            found = self._by_gv[api_version].get(kind)
        return found

    def forget(self, group: str) -> None:
        """Drop cached versions of ``group`` (after a CRD of that group changed)."""
        for gv in [gv for gv in self._by_gv if gv.split("/")[0] == group and "/" in gv]:
            del self._by_gv[gv]

    def group_versions(self) -> list[str]:
        """Every served group-version, preferred versions only (``v1`` first)."""
        groups = self._get("/apis", "").get("groups") or []
        return ["v1"] + [str(g["preferredVersion"]["groupVersion"]) for g in groups if g.get("preferredVersion")]

    def resources(self, group_version: str) -> list[ResourceInfo]:
        """Resources of ``group_version`` (cached)."""
        if group_version not in self._by_gv:
            self._by_gv[group_version] = self._fetch(group_version)
        return list(self._by_gv[group_version].values())

    def _fetch(self, group_version: str) -> dict[str, ResourceInfo]:
        path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        body = self._get(path, group_version)
        out: dict[str, ResourceInfo] = {}
        for r in body.get("resources") or []:
            if "/" not in str(r.get("name")):  # subresources (deployments/scale) are not kinds
                out[str(r["kind"])] = ResourceInfo(group_version, str(r["kind"]), str(r["name"]),
                                                   bool(r.get("namespaced")), frozenset(r.get("verbs") or ()))
        return out

    def _get(self, path: str, group_version: str) -> Obj:
        resp = self.rest.call("GET", path, counter="discovery")
        if resp.status == 404:
            return {}
        if not resp.ok:
            raise api_error(resp, ObjRef("APIGroup", "", group_version or "all"))
        return resp.body


class ServerApply:
    """GET and server-side apply (real or dry run) of plain-dict objects on one cluster.

    Args:
        rest: the cluster's :class:`Rest`.
        resources: its discovery cache.
        field_manager: the manager name recorded in ``managedFields``.
    """

    def __init__(self, rest: Rest, resources: Resources, field_manager: str = FIELD_MANAGER) -> None:
        self.rest = rest
        self.resources = resources
        self.field_manager = field_manager

    def resource_of(self, obj: Obj) -> ResourceInfo | None:
        """The served resource of ``obj``'s kind, or None when the cluster does not serve it."""
        return self.resources.lookup(str(obj.get("apiVersion", "")), str(obj.get("kind", "")))

    def _path(self, obj: Obj) -> str:
        info = self.resource_of(obj)
        r = ref(obj)
        if info is None:
            raise TargetError(f"the target does not serve {r.kind} of {r.api_version}", resource=f"{r.kind.lower()}/"
                              f"{r.name}", namespace=r.namespace, fix="install its CRD or operator on the target first")
        if info.namespaced and not r.namespace:
            raise TargetError("a namespaced object has no metadata.namespace", resource=f"{r.kind.lower()}/{r.name}",
                              fix="set metadata.namespace (k3smig never guesses 'default')")
        return info.path(r.namespace, r.name)

    def get(self, obj: Obj) -> Obj | None:
        """The live object with ``obj``'s identity, or None when it does not exist.

        Raises:
            ApiCallError: the GET failed (other than 404).
        """
        resp = self.rest.call("GET", self._path(obj), counter="gets")
        if resp.status == 404:
            return None
        if not resp.ok:
            raise api_error(resp, ref(obj), secret=obj.get("kind") == "Secret")
        return resp.body

    def apply(self, obj: Obj, *, dry_run: bool, force: bool = False) -> Response:
        """Server-side apply ``obj``; the response is returned whatever its status (the caller decides).

        Args:
            obj: the desired object (status and server metadata are stripped before sending).
            dry_run: ``dryRun=All``: validated and admitted, never stored.
            force: take ownership of fields another manager owns (only under ``existing=update``).
        """
        query: dict[str, str] = {"fieldManager": self.field_manager}
        if force:
            query["force"] = "true"
        if dry_run:
            query["dryRun"] = "All"
        return self.rest.call("PATCH", self._path(obj), counter="dry_runs" if dry_run else "applies", query=query,
                              body=apply_body(obj), content_type=APPLY_PATCH)
