"""Every resource a cluster serves: core, API groups and CRDs, at each group's preferred version.

Discovery reads ``/api``, ``/apis`` and one resource list per group version (in parallel), like
``kubectl api-resources``. Only each group's *preferred* version is kept, so one object is never
listed twice through two versions. Subresources (``pods/log``, ``deployments/scale``) are skipped:
they are views of their parent, not objects. A group whose resource list cannot be read (an
aggregated API whose backend is down answers 503) is recorded in :attr:`Discovery.failed` rather
than silently dropped; callers decide whether that is fatal.

:func:`discover` reads everything at once (an export lists every kind); :class:`ResourceCache`
answers "which resource serves this apiVersion and kind" one group version at a time (a deploy
addresses the kinds it writes). Both parse the same documents into the same :class:`ApiResource`,
through the same transport (:class:`~k3smig_lib.k8s.client.Kube`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.client import Kube


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

    def path(self, namespace: str = "", name: str = "") -> str:
        """URL of the collection (``name`` empty) or of one object, cluster-wide or in ``namespace``.

        A cluster-scoped resource ignores ``namespace``, so an object's own namespace field (which
        the API server ignores for cluster-scoped kinds) cannot produce a wrong URL.

        Examples:
            >>> ApiResource("apps", "v1", "deployments", "Deployment", True).path("shop")
            '/apis/apps/v1/namespaces/shop/deployments'
            >>> ApiResource("", "v1", "namespaces", "Namespace", False).path("ignored", "shop")
            '/api/v1/namespaces/shop'
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{base}{scope}/{self.name}" + (f"/{name}" if name else "")


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
    """Discovery GETs through the transport, with a call count of this discovery alone."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.calls = 0
        self._lock = threading.Lock()

    def _tally(self) -> None:
        with self._lock:
            self.calls += 1

    def get(self, path: str) -> dict[str, Any]:
        return self.kube.request("GET", path, counter="discovery", on_attempt=self._tally).body

    def wait_ready(self) -> None:
        """Wait (retrying 5xx) until ``/readyz`` says ok.

        A just-started API server serves ``/apis`` before its CRD and APIService groups are
        registered, and discovery would silently miss them. Servers that hide ``/readyz``
        (403/404) are taken as ready.
        """
        self.kube.request("GET", "/readyz", counter="discovery", accept=(403, 404), on_attempt=self._tally)


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


def discover(kube: Kube, *, workers: int = 4) -> Discovery:
    """Read every served resource of the cluster behind ``kube``.

    Args:
        kube: the cluster's transport (side, context, retry policy and clock are its own).
        workers: group versions read in parallel.

    Returns:
        The resources, failed group versions, call count and duration.

    Raises:
        SourceError | TargetError: the server stays not ready (``/readyz``), or ``/api``, ``/apis`` or
            the core resource list cannot be read.

    Examples:
        >>> d = discover(Kube.of(ClusterRef("kubeconfig", "k3smig-source", "source")))  # doctest: +SKIP
        >>> d.find("Deployment").full_name  # doctest: +SKIP
        'deployments.apps'
    """
    start = kube.clock()
    getter = _Getter(kube)
    getter.wait_ready()
    pairs = preferred_group_versions(getter.get("/api"), getter.get("/apis"))
    out = Discovery()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="k3smig-discovery") as pool:
        _collect(pool.map(lambda p: _read_group(getter, p), pairs), out)
    out.calls = getter.calls
    out.seconds = kube.clock() - start
    return out


def split_api_version(api_version: str) -> tuple[str, str]:
    """(group, version) of an ``apiVersion``.

    Examples:
        >>> split_api_version("apps/v1"), split_api_version("v1")
        (('apps', 'v1'), ('', 'v1'))
    """
    group, _, version = api_version.rpartition("/")
    return group, version


class ResourceCache:
    """Which resource serves an ``(apiVersion, kind)``: one discovery request per group version, cached.

    A kind missing from a cached group version refetches that group version once, because a CRD
    applied a moment ago adds kinds to a group that was read before it was established. After a CRD
    of a group changes, :meth:`forget` drops the group's cached versions. Safe to share between the
    threads of a plan.

    Args:
        kube: the cluster's transport (discovery calls count as ``discovery``).

    Examples:
        >>> ResourceCache(kube).lookup("apps/v1", "Deployment").path("shop", "web")  # doctest: +SKIP
        '/apis/apps/v1/namespaces/shop/deployments/web'
    """

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._by_gv: dict[str, dict[str, ApiResource]] = {}
        self._lock = threading.Lock()

    def lookup(self, api_version: str, kind: str) -> ApiResource | None:
        """The resource serving ``kind`` in ``api_version``, or None when the cluster does not serve it.

        Raises:
            SourceError | TargetError: discovery itself failed (other than 404: an unserved group version).
        """
        with self._lock:
            found = self._by_gv.get(api_version, {}).get(kind)
        if found is None:
            fetched = self._fetch(api_version)
            with self._lock:
                self._by_gv[api_version] = fetched
            found = fetched.get(kind)
        return found

    def resources(self, api_version: str) -> list[ApiResource]:
        """Every resource of ``api_version`` (cached; empty when the group version is not served)."""
        with self._lock:
            known = self._by_gv.get(api_version)
        if known is None:
            known = self._fetch(api_version)
            with self._lock:
                self._by_gv[api_version] = known
        return list(known.values())

    def forget(self, group: str) -> None:
        """Drop the cached versions of ``group`` (after one of its CRDs was created or changed)."""
        with self._lock:
            for gv in [gv for gv in self._by_gv if split_api_version(gv)[0] == group]:
                del self._by_gv[gv]

    def _fetch(self, api_version: str) -> dict[str, ApiResource]:
        group, version = split_api_version(api_version)
        if not version:
            return {}
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        resp = self.kube.request("GET", path, counter="discovery", accept=(404,))
        if resp.status == 404:
            return {}
        return {r.kind: r for r in parse_resource_list(group, version, resp.body)}
