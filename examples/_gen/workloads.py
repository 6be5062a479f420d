"""Deployments, StatefulSets and DaemonSets together with what their controllers made from them.

A Deployment comes with its ReplicaSets (the current one and, after an upgrade, the old one scaled to
zero) and their Pods; a StatefulSet with its ControllerRevision, ordinal Pods and claimed PVCs; a
DaemonSet with one Pod per node. Names, hashes and labels follow the controllers' conventions.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass

from _gen.common import Obj, suffix, ts_add
from _gen.defaults import apply_defaults
from _gen.pods import PodRun, make_pod
from _gen.server import KCM, KUBECTL, Cluster, Write, applied, object_uid, owner_ref
from _gen.storage import provision
from _gen.topology import NODES, Node

_REVISION = "deployment.kubernetes.io/revision"


@dataclass(frozen=True)
class Placement:
    """Where one replica runs and since when."""

    node: Node
    started: str


def _defaulted(manifest: Obj) -> Obj:
    obj = copy.deepcopy(manifest)
    apply_defaults(obj)
    return obj


def template_hash(template: Obj) -> str:
    """A ``pod-template-hash``/``controller-revision-hash`` value (10 safe characters)."""
    return suffix("tpl:" + json.dumps(template, sort_keys=True), 10)


def _ready_status(replicas: int, generation: int) -> Obj:
    if replicas == 0:
        return {"observedGeneration": generation, "replicas": 0}
    return {
        "availableReplicas": replicas,
        "fullyLabeledReplicas": replicas,
        "observedGeneration": generation,
        "readyReplicas": replicas,
        "replicas": replicas,
    }


def _replicaset(c: Cluster, dep: Obj, template: Obj, revision: int, replicas: int, times: tuple[str, str]) -> Obj:
    spec = dep["spec"]
    tpl_hash = template_hash(template)
    tpl = copy.deepcopy(template)
    tpl["metadata"]["labels"]["pod-template-hash"] = tpl_hash
    surge = spec["strategy"].get("rollingUpdate", {}).get("maxSurge", 0)
    max_replicas = spec["replicas"] + (math.ceil(spec["replicas"] * 0.25) if surge == "25%" else int(surge))
    meta: Obj = {
        "name": f"{dep['metadata']['name']}-{tpl_hash}",
        "namespace": dep["metadata"]["namespace"],
        "labels": dict(tpl["metadata"]["labels"]),
        "ownerReferences": [owner_ref(dep)],
        "annotations": {
            "deployment.kubernetes.io/desired-replicas": str(spec["replicas"]),
            "deployment.kubernetes.io/max-replicas": str(max_replicas),
            _REVISION: str(revision),
        },
    }
    for key in ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace"):
        if key in dep["metadata"].get("annotations", {}):
            meta["annotations"][key] = dep["metadata"]["annotations"][key]
    selector = {"matchLabels": {**spec["selector"]["matchLabels"], "pod-template-hash": tpl_hash}}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": meta,
        "spec": {"replicas": replicas, "selector": selector, "template": tpl},
    }
    created, settled = times
    status = Write(KCM, settled, {"status": _ready_status(replicas, 2 if replicas == 0 else 1)}, "status")
    return applied(c, manifest, created, manager=KCM, writes=(status,), generation=2 if replicas == 0 else 1)


def deployment(
    c: Cluster,
    manifest: Obj,
    created: str,
    placements: list[Placement],
    *,
    manager: str = KUBECTL,
    upgraded_from: tuple[str, str] | None = None,
    priority: int = 0,
) -> Obj:
    """Create a Deployment, its ReplicaSet(s) and its running Pods.

    ``upgraded_from`` is ``(previous image, time of the upgrade)``: the old ReplicaSet stays, scaled
    to zero, and the Deployment is at revision 2.
    """
    dep = _defaulted(manifest)
    dep["metadata"]["uid"] = object_uid(manifest)
    revision, rollout = 1, created
    if upgraded_from:
        old_tpl = copy.deepcopy(dep["spec"]["template"])
        old_tpl["spec"]["containers"][0]["image"] = upgraded_from[0]
        _replicaset(c, dep, old_tpl, 1, 0, (created, upgraded_from[1]))
        revision, rollout = 2, upgraded_from[1]
    rs = _replicaset(c, dep, dep["spec"]["template"], revision, len(placements), (rollout, ts_add(rollout, 40)))
    rs_name = rs["metadata"]["name"]
    for p in placements:
        name = f"{rs_name}-{suffix('pod:' + rs_name + p.node.name + p.started)}"
        make_pod(
            c,
            rs,
            rs["spec"]["template"],
            PodRun(name, p.node, p.started, priority=priority),
            generate_name=rs_name + "-",
        )
    done = ts_add(rollout, 40)
    writes = (
        Write(KCM, rollout, {"metadata": {"annotations": {_REVISION: str(revision)}}}),
        Write(
            KCM,
            done,
            {"status": _deployment_status(len(placements), revision, rs_name, created, done)},
            "status",
        ),
    )
    return applied(c, manifest, created, manager=manager, writes=writes, generation=revision)


def _deployment_status(replicas: int, generation: int, rs_name: str, created: str, done: str) -> Obj:
    available = {
        "lastTransitionTime": done,
        "lastUpdateTime": done,
        "message": "Deployment has minimum availability.",
        "reason": "MinimumReplicasAvailable",
        "status": "True",
        "type": "Available",
    }
    progressing = {
        "lastTransitionTime": created,
        "lastUpdateTime": done,
        "message": f'ReplicaSet "{rs_name}" has successfully progressed.',
        "reason": "NewReplicaSetAvailable",
        "status": "True",
        "type": "Progressing",
    }
    status: Obj = {"conditions": [available, progressing], "observedGeneration": generation}
    if replicas:
        status.update(
            {
                "availableReplicas": replicas,
                "readyReplicas": replicas,
                "replicas": replicas,
                "updatedReplicas": replicas,
            }
        )
    return status


def controller_revision(c: Cluster, owner: Obj, template: Obj, created: str) -> Obj:
    """The ControllerRevision a StatefulSet or DaemonSet controller stores for its template."""
    tpl_hash = template_hash(template)
    labels = {**template["metadata"].get("labels", {}), "controller.kubernetes.io/hash": tpl_hash}
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{owner['metadata']['name']}-{tpl_hash}",
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [owner_ref(owner)],
        },
        "data": {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}},
        "revision": 1,
    }
    return applied(c, manifest, created, manager=KCM)


def statefulset(c: Cluster, manifest: Obj, created: str, placements: list[Placement], *, manager: str = KUBECTL) -> Obj:
    """Create a StatefulSet with its ControllerRevision, ordinal Pods and their bound PVCs."""
    sts = _defaulted(manifest)
    sts["metadata"]["uid"] = object_uid(manifest)
    name, spec = sts["metadata"]["name"], sts["spec"]
    revision = controller_revision(c, sts, spec["template"], created)["metadata"]["name"]
    for ordinal, p in enumerate(placements):
        pod_name = f"{name}-{ordinal}"
        claims = [
            (t["metadata"]["name"], f"{t['metadata']['name']}-{pod_name}", t) for t in spec["volumeClaimTemplates"]
        ]
        for _, claim_name, tmpl in claims:
            _claim_from_template(c, sts, tmpl, claim_name, p.node, ts_add(created, 2 + ordinal))
        labels = {
            "apps.kubernetes.io/pod-index": str(ordinal),
            "controller-revision-hash": revision,
            "statefulset.kubernetes.io/pod-name": pod_name,
        }
        template = copy.deepcopy(spec["template"])
        claim_volumes = [{"name": t, "persistentVolumeClaim": {"claimName": n}} for t, n, _ in claims]
        template["spec"]["volumes"] = claim_volumes + template["spec"].get("volumes", [])
        patch: Obj = {"hostname": pod_name, "subdomain": spec["serviceName"]}
        make_pod(
            c,
            sts,
            template,
            PodRun(pod_name, p.node, p.started, extra_labels=labels),
            generate_name=name + "-",
            spec_patch=patch,
        )
    n = len(placements)
    status = {
        "availableReplicas": n,
        "collisionCount": 0,
        "currentReplicas": n,
        "currentRevision": revision,
        "observedGeneration": 1,
        "readyReplicas": n,
        "replicas": n,
        "updateRevision": revision,
        "updatedReplicas": n,
    }
    done = ts_add(placements[-1].started, 30)
    return applied(c, manifest, created, manager=manager, writes=(Write(KCM, done, {"status": status}, "status"),))


def _claim_from_template(c: Cluster, sts: Obj, tmpl: Obj, claim_name: str, node: Node, created: str) -> Obj:
    labels = {**tmpl["metadata"].get("labels", {}), **sts["spec"]["selector"]["matchLabels"]}
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim_name, "namespace": sts["metadata"]["namespace"], "labels": labels},
        "spec": copy.deepcopy(tmpl["spec"]),
    }
    return provision(c, pvc, created, node, manager=KCM)


def daemonset(c: Cluster, manifest: Obj, created: str, *, manager: str = KUBECTL, priority: int = 0) -> Obj:
    """Create a DaemonSet with its ControllerRevision and one running Pod on every node."""
    ds = _defaulted(manifest)
    ds["metadata"]["uid"] = object_uid(manifest)
    name = ds["metadata"]["name"]
    revision = controller_revision(c, ds, ds["spec"]["template"], created)["metadata"]["name"]
    tpl_hash = revision.rsplit("-", 1)[1]
    for node in NODES:
        started = ts_add(created, 5 + node.index)
        affinity = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node.name]}]}
                    ]
                }
            }
        }
        labels = {"controller-revision-hash": tpl_hash, "pod-template-generation": "1"}
        pod_name = f"{name}-{suffix('ds:' + name + node.name)}"
        make_pod(
            c,
            ds,
            ds["spec"]["template"],
            PodRun(pod_name, node, started, priority=priority, extra_labels=labels),
            generate_name=name + "-",
            tolerations=_daemon_tolerations(),
            spec_patch={"affinity": affinity},
        )
    n = len(NODES)
    status = {
        "currentNumberScheduled": n,
        "desiredNumberScheduled": n,
        "numberAvailable": n,
        "numberMisscheduled": 0,
        "numberReady": n,
        "observedGeneration": 1,
        "updatedNumberScheduled": n,
    }
    return applied(
        c,
        manifest,
        created,
        manager=manager,
        writes=(Write(KCM, ts_add(created, 60), {"status": status}, "status"),),
    )


def _daemon_tolerations() -> list[Obj]:
    keys = [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ]
    return [{"effect": effect, "key": key, "operator": "Exists"} for key, effect in keys]
