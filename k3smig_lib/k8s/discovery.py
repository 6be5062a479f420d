"""Every resource a cluster serves: core, API groups and CRDs, at each group's preferred version.

Discovery reads ``/api``, ``/apis`` and one resource list per group version (in parallel), like
``kubectl api-resources``. Only each group's *preferred* version is kept, so one object is never
listed twice through two versions. Subresources (``pods/log``, ``deployments/scale``) are skipped:
they are views of their parent, not objects. A group whose resource list cannot be read (an
aggregated API whose backend is down answers 503) is recorded in :attr:`Discovery.failed` rather
than silently dropped; callers decide whether that is fatal.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient

from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.client import request_json
from k3smig_lib.k8s.errors import ApiCall, status_of
from k3smig_lib.k8s.retry import DEFAULT_POLICY, RetryPolicy, call_with_retry


@dataclass(frozen=True)
class ApiResource:
    """One served resource type.

    Attributes:
        group: API group (``""`` for core).
        version: the group's preferred version.
        name: plural name used in URLs (``deployments``).
        kind: object kind (``Deployment``).
        namespaced: True when objects live in namespaces.
        verbs: verbs the server supports on the collection/objects.
        short_names: kubectl short names (``deploy``).
    """

    group: str
    version: str
    name: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        """``apps/v1`` or ``v1``."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def full_name(self) -> str:
        """``deployments.apps`` (kubectl's unambiguous spelling); core resources stay bare."""
        return f"{self.name}.{self.group}" if self.group else self.name

    @property
    def listable(self) -> bool:
        """The server supports ``list`` on it."""
        return "list" in self.verbs

    def path(self, namespace: str = "") -> str:
        """Collection URL, cluster-wide or in ``namespace``.

        Examples:
            >>> ApiResource("apps", "v1", "deployments", "Deployment", True).path("shop")
            '/apis/apps/v1/namespaces/shop/deployments'
            >>> ApiResource("", "v1", "nodes", "Node", False).path()
            '/api/v1/nodes'
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        return f"{base}/namespaces/{namespace}/{self.name}" if namespace else f"{base}/{self.name}"


@dataclass
class Discovery:
    """What a cluster serves, and what discovery could not read.

    Attributes:
        resources: every served resource (subresources excluded), sorted by group, version, name.
        failed: ``groupVersion`` → reason, for group versions whose resource list failed.
        calls: HTTP calls made (retries included).
        seconds: wall time of the discovery.
    """

    resources: list[ApiResource] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    calls: int = 0
    seconds: float = 0.0

    def find(self, kind: str, group: str | None = None) -> ApiResource | None:
        """The resource serving ``kind`` (in ``group`` when given), or None."""
        for res in self.resources:
            if res.kind == kind and (group is None or res.group == group):
                return res
        return None

    @property
    def listable(self) -> list[ApiResource]:
        """Resources that support ``list``."""
        return [r for r in self.resources if r.listable]


def parse_resource_list(group: str, version: str, doc: dict[str, Any]) -> list[ApiResource]:
    """Resources of one ``APIResourceList`` document, subresources skipped.

    Examples:
        >>> doc = {"resources": [{"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list"]},
        ...                      {"name": "pods/log", "kind": "Pod", "namespaced": True, "verbs": ["get"]}]}
        >>> [r.name for r in parse_resource_list("", "v1", doc)]
        ['pods']
    """
    out = []
    for item in doc.get("resources") or []:
        name = str(item.get("name", ""))
        if not name or "/" in name:
            continue
        out.append(
            ApiResource(
                group=group,
                version=version,
                name=name,
                kind=str(item.get("kind", "")),
                namespaced=bool(item.get("namespaced")),
                verbs=frozenset(str(v) for v in item.get("verbs") or []),
                short_names=tuple(str(s) for s in item.get("shortNames") or []),
            )
        )
    return out


def preferred_group_versions(core: dict[str, Any], groups: dict[str, Any]) -> list[tuple[str, str]]:
    """(group, version) pairs to read: core versions, then each group's preferred version.

    Examples:
        >>> preferred_group_versions({"versions": ["v1"]},
        ...     {"groups": [{"name": "apps", "preferredVersion": {"version": "v1"}, "versions": []}]})
        [('', 'v1'), ('apps', 'v1')]
    """
    pairs = [("", str(v)) for v in core.get("versions") or []]
    for g in groups.get("groups") or []:
        preferred = (g.get("preferredVersion") or {}).get("version")
        versions = [v.get("version") for v in g.get("versions") or []]
        version = preferred or (versions[0] if versions else None)
        if version:
            pairs.append((str(g["name"]), str(version)))
    return pairs


class _Getter:
    """GETs with retry and a thread-safe call counter."""

    def __init__(self, api: ApiClient, side: str, context: str, policy: RetryPolicy) -> None:
        self.api, self.side, self.context, self.policy = api, side, context, policy
        self.calls = 0
        self._lock = threading.Lock()

    def get(self, path: str, *, text: bool = False) -> Any:
        call = ApiCall("get", path, side=self.side, context=self.context)

        def attempt() -> Any:
            with self._lock:
                self.calls += 1
            return request_json(self.api, "GET", path, call=call, text=text)

        return call_with_retry(attempt, what=f"discovery GET {path}", policy=self.policy)

    def wait_ready(self) -> None:
        """Wait (retrying 5xx) until ``/readyz`` says ok.

        A just-started API server serves ``/apis`` before its CRD and APIService groups are
        registered, and discovery would silently miss them. Servers that hide ``/readyz``
        (403/404) are taken as ready.
        """
        try:
            self.get("/readyz", text=True)
        except FatalError as e:
            if status_of(e) not in (403, 404):
                raise


def _read_group(getter: _Getter, pair: tuple[str, str]) -> tuple[str, list[ApiResource] | str]:
    group, version = pair
    gv = f"{group}/{version}" if group else version
    path = f"/apis/{gv}" if group else f"/api/{version}"
    try:
        return gv, parse_resource_list(group, version, getter.get(path))
    except FatalError as e:
        if not group:
            raise  # the core group is not optional: nothing works without it
        return gv, e.message


def _collect(results: Iterable[tuple[str, list[ApiResource] | str]], out: Discovery) -> None:
    for gv, found in results:
        if isinstance(found, str):
            out.failed[gv] = found
        else:
            out.resources.extend(found)
    out.resources.sort(key=lambda r: (r.group, r.version, r.name))


def discover(
    api: ApiClient,
    *,
    side: str = "",
    context: str = "",
    policy: RetryPolicy = DEFAULT_POLICY,
    workers: int = 4,
    clock: Callable[[], float] = time.monotonic,
) -> Discovery:
    """Read every served resource of the cluster behind ``api``.

    Args:
        api: client from :func:`k3smig_lib.k8s.client.api_client`.
        side: ``source``/``target``, for error classes and messages.
        context: kubeconfig context, named in credential errors.
        policy: retry policy of every discovery call.
        workers: group versions read in parallel.
        clock: monotonic clock for :attr:`Discovery.seconds`.

    Returns:
        The resources, failed group versions, call count and duration.

    Raises:
        SourceError | TargetError: the server stays not ready (``/readyz``), or ``/api``, ``/apis`` or
            the core resource list cannot be read.

    Examples:
        >>> d = discover(api_client(ClusterRef("kubeconfig", "k3smig-source")))  # doctest: +SKIP
        >>> d.find("Deployment").full_name  # doctest: +SKIP
        'deployments.apps'
    """
    start = clock()
    getter = _Getter(api, side, context, policy)
    getter.wait_ready()
    pairs = preferred_group_versions(getter.get("/api"), getter.get("/apis"))
    out = Discovery()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="k3smig-discovery") as pool:
        _collect(pool.map(lambda p: _read_group(getter, p), pairs), out)
    out.calls = getter.calls
    out.seconds = clock() - start
    return out
