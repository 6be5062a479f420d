"""Pods as the controllers and the kubelet leave them: admission extras, service-account volume, status.

Every Pod of the example is made here from its owner's template, so each carries what a real Pod
carries: ``ownerReferences``, ``nodeName``, ``priority``, default tolerations, the projected
``kube-api-access-*`` volume and a kubelet-written status with IPs, container IDs and image digests.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from _gen.common import Obj, hex_id, suffix, ts_add
from _gen.defaults import pod_spec
from _gen.server import KCM, Cluster, Write, applied, owner_ref
from _gen.topology import Node, pod_ip

SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
_DEFAULT_TOLERATIONS = [
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/not-ready",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
    {
        "effect": "NoExecute",
        "key": "node.kubernetes.io/unreachable",
        "operator": "Exists",
        "tolerationSeconds": 300,
    },
]


@dataclass(frozen=True)
class PodRun:
    """Where and when one Pod ran, and how it ended (``finished`` set for completed Pods)."""

    name: str
    node: Node
    started: str
    finished: str = ""
    priority: int = 0
    extra_labels: dict[str, str] = field(default_factory=dict)


def _api_access_volume(pod_name: str) -> Obj:
    return {
        "name": f"kube-api-access-{suffix('kapi:' + pod_name)}",
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                "path": "namespace",
                            }
                        ]
                    }
                },
            ],
        },
    }


def _pod_spec(template_spec: Obj, run: PodRun, extra_tolerations: list[Obj]) -> Obj:
    spec = copy.deepcopy(template_spec)
    pod_spec(spec)
    spec["nodeName"] = run.node.name
    spec["enableServiceLinks"] = spec.get("enableServiceLinks", True)
    spec["preemptionPolicy"] = "PreemptLowerPriority"
    spec["priority"] = run.priority
    spec.setdefault("serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    spec["tolerations"] = spec.get("tolerations", []) + (extra_tolerations or _DEFAULT_TOLERATIONS)
    if spec.get("automountServiceAccountToken", True):
        volume = _api_access_volume(run.name)
        spec.setdefault("volumes", []).append(volume)
        for c in spec.get("initContainers", []) + spec["containers"]:
            mount = {"mountPath": SA_MOUNT, "name": volume["name"], "readOnly": True}
            c.setdefault("volumeMounts", []).append(mount)
    return spec


def qos_class(spec: Obj) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    resources = [c.get("resources", {}) for c in spec["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits") and set(r["limits"]) >= {"cpu", "memory"} and r.get("requests", r["limits"]) == r["limits"]
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _image_ref(image: str) -> tuple[str, str]:
    repo = image.split("@")[0].rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return image, f"{repo}@sha256:{hex_id('digest:' + image)}"


def _container_status(c: Obj, run: PodRun) -> Obj:
    image, image_id = _image_ref(c["image"])
    container_id = "containerd://" + hex_id(f"ctr:{run.name}/{c['name']}")
    status: Obj = {
        "containerID": container_id,
        "image": image,
        "imageID": image_id,
        "lastState": {},
        "name": c["name"],
        "restartCount": 0,
    }
    if run.finished:
        status.update(
            {
                "ready": False,
                "started": False,
                "state": {
                    "terminated": {
                        "containerID": container_id,
                        "exitCode": 0,
                        "finishedAt": run.finished,
                        "reason": "Completed",
                        "startedAt": ts_add(run.started, 3),
                    }
                },
            }
        )
    else:
        status.update({"ready": True, "started": True, "state": {"running": {"startedAt": ts_add(run.started, 3)}}})
    mounts = [{k: v for k, v in m.items() if k in ("mountPath", "name", "readOnly")} for m in c.get("volumeMounts", [])]
    for mount in mounts:
        if mount.get("readOnly"):
            mount["recursiveReadOnly"] = "Disabled"
    if mounts:
        status["volumeMounts"] = mounts
    return status


def _conditions(run: PodRun) -> list[Obj]:
    done = bool(run.finished)
    when = run.finished or ts_add(run.started, 6)

    def cond(kind: str, ok: bool, at: str, reason: str = "") -> Obj:
        item: Obj = {
            "lastProbeTime": None,
            "lastTransitionTime": at,
            "status": "True" if ok else "False",
            "type": kind,
        }
        if reason:
            item["reason"] = reason
        return item

    return [
        cond("PodReadyToStartContainers", not done, when if done else ts_add(run.started, 2)),
        cond("Initialized", True, ts_add(run.started, 1)),
        cond("Ready", not done, when, "PodCompleted" if done else ""),
        cond("ContainersReady", not done, when, "PodCompleted" if done else ""),
        cond("PodScheduled", True, run.started),
    ]


def pod_status(spec: Obj, run: PodRun, ip: str) -> Obj:
    """The status the kubelet reports for a Pod that is running or has completed."""
    status: Obj = {
        "conditions": _conditions(run),
        "containerStatuses": [_container_status(c, run) for c in spec["containers"]],
        "hostIP": run.node.internal_ip,
        "hostIPs": [{"ip": run.node.internal_ip}],
        "phase": "Succeeded" if run.finished else "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "qosClass": qos_class(spec),
        "startTime": run.started,
    }
    if spec.get("hostNetwork"):
        status["podIP"] = run.node.internal_ip
        status["podIPs"] = [{"ip": run.node.internal_ip}]
    return status


def make_pod(
    c: Cluster,
    owner: Obj,
    template: Obj,
    run: PodRun,
    *,
    generate_name: str = "",
    tolerations: list[Obj] | None = None,
    spec_patch: Obj | None = None,
) -> Obj:
    """Create the Pod ``run.name`` of ``owner`` from ``template`` and register it in ``c``."""
    meta: Obj = {
        "name": run.name,
        "namespace": owner["metadata"]["namespace"],
        "labels": {**template["metadata"].get("labels", {}), **run.extra_labels},
        "ownerReferences": [owner_ref(owner)],
    }
    if generate_name:
        meta["generateName"] = generate_name
    if template["metadata"].get("annotations"):
        meta["annotations"] = dict(template["metadata"]["annotations"])
    spec = _pod_spec(template["spec"], run, tolerations or [])
    spec.update(spec_patch or {})
    manifest: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    status = pod_status(spec, run, pod_ip(run.node, meta["namespace"] + "/" + run.name))
    status_time = run.finished or ts_add(run.started, 6)
    kubelet = Write("kubelet", status_time, {"status": status}, "status")
    pod = applied(c, manifest, run.started, manager=KCM, status=status, writes=(kubelet,))
    if generate_name:
        pod["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:generateName"] = {}
    return pod
