"""Load the scale generator's N objects into a sandbox API server quickly, as they were exported.

Unlike :func:`~k3smig_lib.sandbox.seed.seed_source` (what a user wrote, the controllers make the
rest), this creates *every* object the generator makes — Pods, ReplicaSets, EndpointSlices, Events
included — so a live export at scale lists the same mix the offline scale export holds. Objects are
created in waves, each wave concurrently (``workers`` requests at once): CRDs (then waited for), then
Namespaces and Nodes (as kwok fake nodes), ServiceAccounts and classes, everything else, then owned
objects by depth, their owner references pointed at the owners' new UIDs (a dangling reference would
let the garbage collector delete them). Only what the API server assigns or refuses is removed
(UIDs, resource versions, status, Service cluster IPs); Services, Secrets and the rest keep their
exported form. The sandbox's controllers then do what they do (adopt, reconcile): a live export of
the seeded cluster is a live cluster's export, not a copy of the generator's file.

Usage: ``python -m k3smig_lib.sandbox.scaleseed KUBECONFIG CONTEXT --objects 10000``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from k3smig_lib.core.objects import Obj, ref
from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.client import Kube
from k3smig_lib.k8s.discovery import Discovery, discover
from k3smig_lib.k8s.ref import ClusterRef
from k3smig_lib.sandbox.procs import wait_until
from k3smig_lib.sandbox.scale import scale_objects
from k3smig_lib.sandbox.userform import NO_BACKEND_KINDS, fake_node, user_form

#: Kinds never created: webhooks and APIServices without a backend would break every call.
SKIPPED_KINDS = NO_BACKEND_KINDS | {"ComponentStatus"}
_FIRST = {"Namespace": 1, "Node": 1, "ServiceAccount": 2, "StorageClass": 2, "PriorityClass": 2}
_SA_UID = "kubernetes.io/service-account.uid"
#: Create attempts per object (about 25 s in all): a loaded API server's caches can lag seconds behind.
_ATTEMPTS = 12


@dataclass
class ScaleSeedReport:
    """What :func:`seed_scale` did: counts, and why objects were not created."""

    created: int = 0
    existing: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    #: identity of every object created or already there.
    present: set[str] = field(default_factory=set)


def server_form(obj: Obj) -> Obj:
    """``obj`` as it can be created: its exported form minus what the server assigns or would refuse.

    Examples:
        >>> svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "uid": "u1",
        ...        "annotations": {"a": "1"}, "ownerReferences": [{"uid": "o"}]},
        ...        "spec": {"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}, "status": {}}
        >>> server_form(svc)["metadata"], server_form(svc)["spec"]
        ({'name': 'web', 'annotations': {'a': '1'}, 'ownerReferences': [{'uid': 'o'}]}, {'ports': [{'port': 80}]})
    """
    if obj.get("kind") == "Node":
        return fake_node(obj)
    out = user_form(obj)
    meta, original = out["metadata"], obj.get("metadata") or {}
    annotations = {k: v for k, v in (original.get("annotations") or {}).items() if k != _SA_UID}
    if annotations:
        meta["annotations"] = annotations
    if original.get("ownerReferences"):
        meta["ownerReferences"] = [dict(r) for r in original["ownerReferences"]]
    return out


def _path(disc: Discovery, obj: Obj) -> str:
    """Collection URL of ``obj`` in its own apiVersion (the preferred version may differ)."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.split("/")[0] if "/" in api_version else ""
    res = disc.find(str(obj.get("kind")), group)
    if res is None:
        return ""
    base = f"/apis/{api_version}" if group else f"/api/{api_version}"
    ns = str((obj.get("metadata") or {}).get("namespace") or "")
    return f"{base}/namespaces/{ns}/{res.name}" if res.namespaced and ns else f"{base}/{res.name}"


class _Seeder:
    def __init__(self, kube: Kube, workers: int) -> None:
        self.kube, self.workers = kube, workers
        self.report = ScaleSeedReport()
        self.uids: dict[str, str] = {}  # exported uid -> live uid
        self.disc = discover(kube)

    def create(self, item: tuple[Obj, str]) -> None:
        body, old_uid = item
        rid = ref(body).id
        owners = body["metadata"].get("ownerReferences")
        if owners:
            live = [r | {"uid": self.uids[r.get("uid", "")]} for r in owners if r.get("uid", "") in self.uids]
            if live:
                body["metadata"]["ownerReferences"] = live
            else:
                body["metadata"].pop("ownerReferences")
        path = _path(self.disc, body)
        if not path:
            self.report.skipped[rid] = "API not served by the sandbox"
            return
        for attempt in range(_ATTEMPTS):
            try:
                resp = self.kube.request("POST", path, counter="writes", body=body, accept=(409,))
                break
            except FatalError as e:  # a Pod before the admission's ServiceAccount cache caught up (403): retry
                if attempt == _ATTEMPTS - 1:
                    self.report.failed[rid] = str(e)
                    return
                time.sleep(min(0.5 * (attempt + 1), 3.0))
        if resp.status == 409:
            self.report.existing += 1
            existing = self.kube.request("GET", f"{path}/{body['metadata']['name']}", counter="gets")
            uid = str((existing.body.get("metadata") or {}).get("uid") or "")
        else:
            self.report.created += 1
            uid = str((resp.body.get("metadata") or {}).get("uid") or "")
        self.report.present.add(ref(body).identity)
        if old_uid and uid:
            self.uids[old_uid] = uid

    def wave(self, items: Iterable[tuple[Obj, str]]) -> None:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="k3smig-seed") as pool:
            list(pool.map(self.create, items))

    def crds_established(self, names: list[str], timeout: float) -> None:
        def established() -> bool:
            for name in names:
                crd = self.kube.json("GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}",
                                     counter="gets")
                conds = (crd.get("status") or {}).get("conditions") or []
                if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    return False
            return True

        wait_until(established, timeout, f"CRDs {', '.join(names)}", lambda: "check the CRD manifests")
        self.disc = discover(self.kube)


def _depths(objects: list[Obj]) -> list[int]:
    """Wave of each object: owners before what they own (owners outside the set do not count)."""
    index = {str(o["metadata"].get("uid")): i for i, o in enumerate(objects) if o["metadata"].get("uid")}
    depth: dict[int, int] = {}

    def of(i: int, seen: frozenset[int] = frozenset()) -> int:
        if i not in depth:
            owners = [index[u] for u in (str(r.get("uid")) for r in objects[i]["metadata"].get("ownerReferences")
                                         or []) if u in index and index[u] not in seen]
            base = _FIRST.get(str(objects[i].get("kind")), 3)
            depth[i] = max([base] + [of(j, seen | {i}) + 1 for j in owners]) if owners else base
            depth[i] = max(depth[i], 4) if owners else depth[i]
        return depth[i]

    return [of(i) for i in range(len(objects))]


def seed_scale(kubeconfig: Path, context: str, count: int, *, workers: int = 8,
               timeout: float = 120.0) -> ScaleSeedReport:
    """Create the scale generator's first ``count`` objects in a sandbox cluster.

    Args:
        kubeconfig: the sandbox kubeconfig (from ``up``).
        context: the context to seed, normally ``k3smig-source``.
        count: objects to take from :func:`~k3smig_lib.sandbox.scale.scale_objects`.
        workers: create requests at once.
        timeout: seconds to wait for the CRDs to be established.

    Returns:
        Counts of objects created and already there, and the objects skipped or refused, with why.
    """
    start = time.monotonic()
    kube = Kube.of(ClusterRef(str(kubeconfig), context, "source"))
    seeder = _Seeder(kube, workers)
    generated = list(scale_objects(count))
    accounts = {(o["metadata"].get("namespace"), o["metadata"]["name"]) for o in generated
                if o.get("kind") == "ServiceAccount"}
    objects: list[Obj] = []
    for obj in generated:
        meta = obj["metadata"]
        account = str((obj.get("spec") or {}).get("serviceAccountName") or "default")
        if obj.get("kind") in SKIPPED_KINDS:
            seeder.report.skipped[ref(obj).id] = "needs a backend the sandbox does not run"
        elif obj.get("kind") == "Pod" and account != "default" and (meta.get("namespace"), account) not in accounts:
            # the first N objects can end inside a namespace's copy, before this Pod's ServiceAccount
            seeder.report.skipped[ref(obj).id] = f"its ServiceAccount {account} is not among the {count} objects"
        else:
            objects.append(obj)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    if crds:
        seeder.wave((server_form(o), "") for o in crds)
        seeder.crds_established([c["metadata"]["name"] for c in crds], timeout)
    rest = [o for o in objects if o["kind"] != "CustomResourceDefinition"]
    depths = _depths(rest)
    for wave in sorted(set(depths)):
        seeder.wave((server_form(o), str(o["metadata"].get("uid") or ""))
                    for o, d in zip(rest, depths, strict=True) if d == wave)
    seeder.report.seconds = time.monotonic() - start
    return seeder.report


def main(argv: list[str] | None = None) -> int:
    """Command line: seed N objects, print the counts."""
    parser = argparse.ArgumentParser(prog="python -m k3smig_lib.sandbox.scaleseed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("kubeconfig", type=Path)
    parser.add_argument("context")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    report = seed_scale(args.kubeconfig, args.context, args.objects, workers=args.workers)
    print(f"{report.created} created, {report.existing} already there, {len(report.skipped)} skipped, "
          f"{len(report.failed)} refused in {report.seconds:.1f} s")
    for rid, why in sorted(report.failed.items())[:20]:
        print(f"  refused {rid}: {why}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
