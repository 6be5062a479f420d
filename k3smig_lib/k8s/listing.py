"""Complete, paginated lists of many kinds at once, as plain ``kubectl get -o yaml`` dicts.

Each kind is read in pages (``limit``/``continue``), every page through the retry loop with a
request timeout. When the server has compacted away the snapshot a ``continue`` token points at, it
answers 410 Gone (``ResourceExpired``, typically after 5–15 minutes); the list then restarts from
scratch — a partial list is never returned — and :attr:`ListResult.relists` records it. Kinds are
listed concurrently by a small thread pool (the API server, not the client, is the bottleneck).

List items come back without ``apiVersion``/``kind`` (the API only sets them on the list); they are
filled in, so every object looks exactly like ``kubectl get <kind> <name> -o yaml``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from k3smig_lib.core.objects import Obj
from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.client import Kube
from k3smig_lib.k8s.discovery import ApiResource
from k3smig_lib.k8s.errors import ApiCall, fatal_class, status_of
from k3smig_lib.log import logger

#: Items per page; the API server's own default for kubectl is 500.
PAGE_SIZE = 500
#: Restarts after 410 Gone before giving up (each restart is a full relist).
MAX_RELISTS = 3


@dataclass(frozen=True)
class PageEvent:
    """One page received: for progress lines, call accounting and fault tests."""

    resource: str
    page: int
    items_so_far: int
    more: bool


@dataclass(frozen=True)
class Page:
    """One page of one list, handed out by :func:`stream_many` as soon as it arrives.

    Attributes:
        resource: what is listed.
        items: the page's objects, ``apiVersion``/``kind`` set, in the server's order.
        number: 1-based page number within the current pass.
        attempt: pass number (0, then +1 after each restart on 410 Gone): pages of an earlier pass
            of the same resource are void and must be discarded by the consumer.
        last: True on the last page of a complete list.
        resource_version: ``metadata.resourceVersion`` of the page.
    """

    resource: ApiResource
    items: list[Obj]
    number: int
    attempt: int
    last: bool
    resource_version: str = ""


@dataclass
class ListResult:
    """A complete list of one kind.

    Attributes:
        resource: what was listed.
        items: objects with ``apiVersion``/``kind`` set, sorted by namespace and name.
        resource_version: ``metadata.resourceVersion`` of the (last, complete) list.
        calls: HTTP calls made, retries included.
        pages: pages of the complete list.
        relists: restarts after an expired ``continue`` token (410 Gone).
        seconds: wall time.
    """

    resource: ApiResource
    items: list[Obj] = field(default_factory=list)
    resource_version: str = ""
    calls: int = 0
    pages: int = 0
    relists: int = 0
    seconds: float = 0.0


@dataclass
class ListStats:
    """Lists of many kinds, with totals for the run report."""

    results: list[ListResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def calls(self) -> int:
        """HTTP list calls in total, retries included."""
        return sum(r.calls for r in self.results)

    @property
    def relists(self) -> int:
        """Restarts after 410 Gone, in total."""
        return sum(r.relists for r in self.results)

    @property
    def items(self) -> list[Obj]:
        """Every object of every list, in list order."""
        return [o for r in self.results for o in r.items]


@dataclass
class _Lister:
    """Settings shared by every list of one run, plus a thread-safe call counter per list."""

    kube: Kube
    page_size: int = PAGE_SIZE
    on_page: Callable[[PageEvent], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: threading.Event = field(default_factory=threading.Event)

    def page(self, res: ApiResource, namespace: str, token: str, result: ListResult) -> dict[str, Any]:
        if self.stopped.is_set():  # another list failed for good: do not start new pages
            raise fatal_class(self.kube.side)(f"list {res.full_name}: cancelled because another list failed")
        query = [("limit", str(self.page_size))] + ([("continue", token)] if token else [])
        call = ApiCall("list", res.name, res.group, namespace, side=self.kube.side, context=self.kube.context)

        def tally() -> None:
            with self._lock:
                result.calls += 1

        return self.kube.request("GET", res.path(namespace), counter="lists", query=query, call=call,
                                 on_attempt=tally).body


def with_type(res: ApiResource, item: dict[str, Any]) -> Obj:
    """``item`` with ``apiVersion`` and ``kind`` first, as ``kubectl get -o yaml`` shows it.

    Examples:
        >>> res = ApiResource("", "v1", "configmaps", "ConfigMap", True)
        >>> list(with_type(res, {"metadata": {"name": "a"}, "data": {}}))
        ['apiVersion', 'kind', 'metadata', 'data']
    """
    return {"apiVersion": res.api_version, "kind": res.kind, **item}


def list_order(obj: Obj) -> tuple[str, str]:
    """Order of a complete list: namespace, then name."""
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


PageSink = Callable[[ApiResource, list[Obj], int, bool, dict[str, Any]], None]


def _one_pass(lister: _Lister, res: ApiResource, namespace: str, result: ListResult, sink: PageSink) -> bool:
    """Read every page once, each handed to ``sink``; False when the continue token expired (relist)."""
    token, page, count = "", 0, 0
    while True:
        try:
            doc = lister.page(res, namespace, token, result)
        except FatalError as e:
            if token and status_of(e) == 410:
                logger.warning("%s: continue token expired after %d page(s); listing again", res.full_name, page)
                return False
            raise
        page += 1
        items = [with_type(res, i) for i in doc.get("items") or []]
        count += len(items)
        meta = doc.get("metadata") or {}
        token = str(meta.get("continue") or "")
        if lister.on_page is not None:
            lister.on_page(PageEvent(res.full_name, page, count, bool(token)))
        sink(res, items, page, not token, meta)
        if not token:
            result.resource_version, result.pages = str(meta.get("resourceVersion") or ""), page
            return True


def _collect(result: ListResult) -> PageSink:
    """A sink keeping every item of the current pass in ``result`` (sorted once the list is complete)."""
    items: list[Obj] = []

    def sink(res: ApiResource, page_items: list[Obj], number: int, last: bool, meta: dict[str, Any]) -> None:
        if number == 1:
            items.clear()  # a new pass after 410 Gone
        items.extend(page_items)
        if last:
            result.items = sorted(items, key=list_order)

    return sink


def _list(lister: _Lister, res: ApiResource, namespace: str, max_relists: int,
          sink: PageSink | None = None) -> ListResult:
    start = lister.kube.clock()
    result = ListResult(resource=res)
    sink = sink if sink is not None else _collect(result)
    while not _one_pass(lister, res, namespace, result, sink):
        result.relists += 1
        if result.relists > max_relists:
            raise fatal_class(lister.kube.side)(
                f"list {res.full_name}: the continue token expired {result.relists} times in a row",
                fix="re-run when the cluster is less busy, or raise page_size so a list needs fewer pages",
            )
    result.seconds = lister.kube.clock() - start
    return result


def list_resource(
    kube: Kube,
    res: ApiResource,
    *,
    namespace: str = "",
    page_size: int = PAGE_SIZE,
    max_relists: int = MAX_RELISTS,
    on_page: Callable[[PageEvent], None] | None = None,
) -> ListResult:
    """List every object of ``res`` (cluster-wide, or in ``namespace``), page by page.

    Args:
        kube: the cluster's transport (side, context, retry policy, call counts).
        res: the resource, from :func:`k3smig_lib.k8s.discovery.discover` or a
            :class:`~k3smig_lib.k8s.discovery.ResourceCache`.
        namespace: limit to one namespace (``""``: all namespaces / cluster-scoped).
        page_size: ``limit`` of each page.
        max_relists: restarts after 410 Gone before failing.
        on_page: told about every page received.

    Returns:
        The complete list, with call, page and relist counts.

    Raises:
        SourceError | TargetError: a page failed for good (403 names the missing permission), or
            the continue token expired more than ``max_relists`` times.

    Examples:
        >>> r = list_resource(kube, disc.find("Secret"))  # doctest: +SKIP
        >>> r.items[0]["kind"], r.calls  # doctest: +SKIP
        ('Secret', 1)
    """
    lister = _Lister(kube, page_size, on_page=on_page)
    return _list(lister, res, namespace, max_relists)


_DONE = object()


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def stream_many(
    kube: Kube,
    resources: Sequence[ApiResource],
    *,
    workers: int = 4,
    page_size: int = PAGE_SIZE,
    max_relists: int = MAX_RELISTS,
    on_page: Callable[[PageEvent], None] | None = None,
    stats: ListStats | None = None,
) -> Iterator[Page]:
    """List many kinds concurrently and hand out each page as it arrives (pages of kinds interleave).

    Memory holds at most ``workers`` pages waiting plus the one each worker is reading: a worker
    waits for the consumer before it requests its next page, so a slow consumer slows the lists
    instead of piling them up. A page of a resource whose ``attempt`` is higher than the pages seen
    before voids them (the continue token expired and the list restarted, see :class:`Page`).

    Args:
        kube: the cluster's transport (side, context, retry policy, call counts).
        resources: what to list (cluster-wide).
        workers: lists running at once.
        page_size: ``limit`` of each page.
        max_relists: restarts after 410 Gone before failing, per kind.
        on_page: told about every page received (from worker threads), before it is handed out.
        stats: filled with one :class:`ListResult` per resource (no items) once every list is complete.

    Yields:
        Every page of every resource.

    Raises:
        SourceError | TargetError: the first list that failed for good (the others are cancelled).
    """
    start = kube.clock()
    lister = _Lister(kube, page_size, on_page=on_page)
    pages: queue.Queue[Any] = queue.Queue(maxsize=max(1, workers))
    attempts: dict[int, int] = {}

    def put(item: Any) -> bool:
        """Queue ``item`` for the consumer; False when it stopped listening."""
        while not lister.stopped.is_set():
            try:
                pages.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def sink(res: ApiResource, items: list[Obj], number: int, last: bool, meta: dict[str, Any]) -> None:
        key = id(res)
        if number == 1 and key in attempts:
            attempts[key] += 1
        attempts.setdefault(key, 0)
        if not put(Page(res, items, number, attempts[key], last, str(meta.get("resourceVersion") or ""))):
            raise fatal_class(kube.side)(f"list {res.full_name}: cancelled, the pages are no longer read")

    def run(res: ApiResource) -> ListResult:
        try:
            result = _list(lister, res, "", max_relists, sink)
        except BaseException as e:
            put(_Failed(e))
            raise
        put(_DONE)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="k3smig-list")
    futures = [pool.submit(run, res) for res in resources]
    try:
        finished = 0
        while finished < len(futures):
            item = pages.get()
            if isinstance(item, _Failed):  # the root cause: the lists stopped after it fail as "cancelled"
                raise item.error
            if item is _DONE:
                finished += 1
                continue
            yield item
        if stats is not None:
            stats.results = [f.result() for f in futures]
            stats.seconds = kube.clock() - start
    finally:
        lister.stopped.set()
        for f in futures:
            f.cancel()
        pool.shutdown(wait=True)
