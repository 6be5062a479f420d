"""The defaulting the API server applies on create, so objects carry the fields a real export shows.

A manifest as a user writes it lacks ``terminationMessagePath``, ``dnsPolicy``, ``revisionHistoryLimit``
and dozens of other defaulted fields; a cleaner that only ever saw hand-written YAML would not
meet them. Only the defaults of the kinds the example uses are implemented.
"""

from __future__ import annotations

from typing import Any

from _gen.common import Obj

_PROBE_DEFAULTS = {"failureThreshold": 3, "periodSeconds": 10, "successThreshold": 1, "timeoutSeconds": 1}


def _probe(probe: Obj) -> None:
    for key, value in _PROBE_DEFAULTS.items():
        probe.setdefault(key, value)
    if "httpGet" in probe:
        probe["httpGet"].setdefault("scheme", "HTTP")


def container(c: Obj) -> None:
    """Default one container (pull policy from the tag, termination message, probes, ports)."""
    image = c["image"]
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    c.setdefault("imagePullPolicy", "Always" if tag in ("", "latest") and "@" not in image else "IfNotPresent")
    c.setdefault("resources", {})
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    for port in c.get("ports", []):
        port.setdefault("protocol", "TCP")
    for name in ("livenessProbe", "readinessProbe", "startupProbe"):
        if name in c:
            _probe(c[name])
    for env in c.get("env", []):
        field_ref = env.get("valueFrom", {}).get("fieldRef")
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")


def pod_spec(spec: Obj) -> None:
    """Default a PodSpec (pod templates and Pods)."""
    for c in spec.get("initContainers", []) + spec["containers"]:
        container(c)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if "serviceAccountName" in spec:
        spec["serviceAccount"] = spec["serviceAccountName"]
    for vol in spec.get("volumes", []):
        for source in ("configMap", "secret", "projected"):
            if source in vol:
                vol[source].setdefault("defaultMode", 420)


def template(tpl: Obj) -> None:
    """Default a pod template: ``creationTimestamp: null`` plus the PodSpec defaults."""
    tpl.setdefault("metadata", {})["creationTimestamp"] = None
    pod_spec(tpl["spec"])


def _deployment(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("progressDeadlineSeconds", 600)
    spec.setdefault("revisionHistoryLimit", 10)
    strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
    if strategy["type"] == "RollingUpdate":
        strategy.setdefault("rollingUpdate", {"maxSurge": "25%", "maxUnavailable": "25%"})
    template(spec["template"])


def _statefulset(spec: Obj) -> None:
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    spec.setdefault("persistentVolumeClaimRetentionPolicy", {"whenDeleted": "Retain", "whenScaled": "Retain"})
    for claim in spec.get("volumeClaimTemplates", []):
        claim.setdefault("apiVersion", "v1")
        claim.setdefault("kind", "PersistentVolumeClaim")
        claim.setdefault("metadata", {})["creationTimestamp"] = None
        claim["spec"].setdefault("volumeMode", "Filesystem")
        claim["status"] = {"phase": "Pending"}
    template(spec["template"])


def _daemonset(spec: Obj) -> None:
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}})
    template(spec["template"])


def job_spec(spec: Obj) -> None:
    """Default a JobSpec (standalone Jobs and CronJob job templates; selector set elsewhere)."""
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    spec.setdefault("suspend", False)
    template(spec["template"])


def _cronjob(spec: Obj) -> None:
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("failedJobsHistoryLimit", 1)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("suspend", False)
    spec["jobTemplate"].setdefault("metadata", {})["creationTimestamp"] = None
    job_template = spec["jobTemplate"]["spec"]
    job_template.setdefault("backoffLimit", 6)
    template(job_template["template"])


def _pvc(spec: Obj) -> None:
    spec.setdefault("volumeMode", "Filesystem")


def _network_policy(spec: Obj) -> None:
    spec.setdefault("policyTypes", ["Egress", "Ingress"] if "egress" in spec else ["Ingress"])


_SPEC_DEFAULTS: dict[str, Any] = {
    "Deployment": _deployment,
    "StatefulSet": _statefulset,
    "DaemonSet": _daemonset,
    "Job": job_spec,
    "CronJob": _cronjob,
    "PersistentVolumeClaim": _pvc,
    "NetworkPolicy": _network_policy,
}


def apply_defaults(obj: Obj) -> None:
    """Default ``obj`` in place, like the API server's create path does."""
    kind = obj["kind"]
    if kind in _SPEC_DEFAULTS:
        _SPEC_DEFAULTS[kind](obj["spec"])
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
    elif kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif kind == "PriorityClass":
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")
    elif kind == "Namespace":
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
