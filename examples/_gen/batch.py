"""Jobs that have run to completion, and CronJobs with the last Job they spawned.

The Job controller generates the selector and pod labels from the Job's uid
(``batch.kubernetes.io/controller-uid``), which is why a cleaner must drop them; a completed Job
carries ``status.completionTime`` and its Pod is ``Succeeded``.
"""

from __future__ import annotations

import copy

from _gen.common import Obj, epoch, suffix, ts_add
from _gen.defaults import job_spec
from _gen.pods import PodRun, make_pod
from _gen.server import KCM, KUBECTL, Cluster, Write, applied, object_uid, owner_ref
from _gen.topology import Node


def _job_labels(job_uid: str, name: str) -> dict[str, str]:
    return {
        "batch.kubernetes.io/controller-uid": job_uid,
        "batch.kubernetes.io/job-name": name,
        "controller-uid": job_uid,
        "job-name": name,
    }


def _completed_status(started: str, finished: str) -> Obj:
    message = "Reached expected number of succeeded pods"

    def cond(kind: str) -> Obj:
        return {
            "lastProbeTime": finished,
            "lastTransitionTime": finished,
            "message": message,
            "reason": "CompletionsReached",
            "status": "True",
            "type": kind,
        }

    return {
        "completionTime": finished,
        "conditions": [cond("SuccessCriteriaMet"), cond("Complete")],
        "ready": 0,
        "startTime": started,
        "succeeded": 1,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    }


def completed_job(
    c: Cluster,
    manifest: Obj,
    started: str,
    finished: str,
    node: Node,
    *,
    manager: str = KUBECTL,
    owner: Obj | None = None,
) -> Obj:
    """Create a Job that ran one Pod to success on ``node`` between ``started`` and ``finished``."""
    job_uid = object_uid(manifest)
    name = manifest["metadata"]["name"]
    labels = _job_labels(job_uid, name)
    defaulted = copy.deepcopy(manifest)
    job_spec(defaulted["spec"])
    template = defaulted["spec"]["template"]
    template["metadata"]["labels"] = {**labels, **template["metadata"].get("labels", {})}
    admitted: Obj = {
        "spec": {
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": job_uid}},
            "template": {"metadata": {"labels": dict(labels)}},
        }
    }
    stub = {
        **manifest,
        "metadata": {**manifest["metadata"], "uid": job_uid},
        "apiVersion": "batch/v1",
        "kind": "Job",
    }
    pod_name = f"{name}-{suffix('jobpod:' + job_uid)}"
    make_pod(
        c,
        stub,
        template,
        PodRun(pod_name, node, ts_add(started, 1), finished=finished),
        generate_name=name + "-",
    )
    status_write = Write(KCM, finished, {"status": _completed_status(started, finished)}, "status")
    return applied(c, manifest, started, manager=manager, admitted=admitted, writes=(status_write,))


def cronjob(c: Cluster, manifest: Obj, created: str, last_run: str, node: Node) -> Obj:
    """Create a CronJob and the Job (with its Pod) it started at ``last_run``."""
    cj_uid = object_uid(manifest)
    name = manifest["metadata"]["name"]
    owner = {**manifest, "metadata": {**manifest["metadata"], "uid": cj_uid}}
    job_tpl = copy.deepcopy(manifest["spec"]["jobTemplate"])
    job_name = f"{name}-{epoch(last_run) // 60}"
    job_meta = {
        "name": job_name,
        "namespace": manifest["metadata"]["namespace"],
        "labels": dict(job_tpl.get("metadata", {}).get("labels", {})),
        "annotations": {"batch.kubernetes.io/cronjob-scheduled-timestamp": last_run},
        "ownerReferences": [owner_ref(owner)],
    }
    job_manifest = {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta, "spec": job_tpl["spec"]}
    finished = ts_add(last_run, 48)
    completed_job(c, job_manifest, last_run, finished, node, manager=KCM)
    status = {"lastScheduleTime": last_run, "lastSuccessfulTime": finished}
    return applied(c, manifest, created, writes=(Write(KCM, finished, {"status": status}, "status"),))
