"""Helper pods: a short-lived pod per volume and side that mounts the claim and runs the volume scripts.

A helper is created by k3smig, labelled ``app.kubernetes.io/managed-by: k3smig`` with the run id,
bounded by ``activeDeadlineSeconds``, given small resource requests, and mounts the claim read-only
on the source. It does nothing by itself (``sleep``): every step is a ``pods/exec`` of a script from
:mod:`k3smig_lib.core.volscripts`, with ``VOLUME_DIR`` set to the mount path. A claim still attached to
a running pod (ReadWriteOnce) is reached on that pod's node, with that pod's tolerations.

Failures name their cause and fix: a namespace whose Pod Security admission refuses the helper names
the label to change; a helper that cannot start reports the reason from its status and Events
(unschedulable, image pull); helpers are deleted in every outcome, and :func:`sweep` removes the
ones a crashed run left behind.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from k3smig_lib.core.config import DEFAULT_HELPER_IMAGE
from k3smig_lib.core.objects import Obj, get_path
from k3smig_lib.errors import FatalError
from k3smig_lib.k8s.errors import fatal_class
from k3smig_lib.k8s.readiness import condition
from k3smig_lib.log import logger

if TYPE_CHECKING:
    from k3smig_lib.k8s.client import Kube

MANAGED_BY = "app.kubernetes.io/managed-by"
COMPONENT = "app.kubernetes.io/component"
RUN_LABEL = "k3smig.io/run-id"
SIDE_LABEL = "k3smig.io/side"
CLAIM_ANNOTATION = "k3smig.io/claim"
HELPER_SELECTOR = f"{MANAGED_BY}=k3smig,{COMPONENT}=volume-helper"
MOUNT_PATH = "/k3smig/volume"
#: Default helper image (GNU tar, find, coreutils). Pin a digest or a mirror with ``volume_helper_image``
#: (``registry.example.org/mirror/debian:bookworm-slim@sha256:…``).
DEFAULT_IMAGE = DEFAULT_HELPER_IMAGE
_PSA = re.compile(r'violates PodSecurity "([a-z]+):')
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]")
_BAD_WAITING = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                "CreateContainerError", "CrashLoopBackOff"}


def label_value(text: str) -> str:
    """``text`` as a valid label value (63 characters of ``[A-Za-z0-9_.-]``, alphanumeric at both ends).

    Examples:
        >>> label_value("20261207T090000Z-sandbox")
        '20261207T090000Z-sandbox'
    """
    value = _LABEL_VALUE.sub("-", text)[:63].strip("-_.")
    return value or "none"


@dataclass(frozen=True)
class HelperSpec:
    """Everything that decides a helper pod.

    Attributes:
        namespace: the claim's namespace.
        claim: the claim to mount.
        side: ``source`` (mounted read-only) or ``target``.
        run_id: the run that owns the helper (label, for sweeps).
        image: helper image (GNU tar, find, coreutils).
        user: ``(uid, gid)`` to run as; None = root.
        node: node to run on (the claim is attached there), or ``""``.
        tolerations: tolerations copied from the pod that uses the claim.
        deadline: ``activeDeadlineSeconds``: the helper ends by itself after this even if k3smig dies.
    """

    namespace: str
    claim: str
    side: str
    run_id: str
    image: str = DEFAULT_IMAGE
    user: tuple[int, int] | None = None
    node: str = ""
    tolerations: tuple[dict[str, Any], ...] = ()
    deadline: int = 6 * 3600
    session: str = field(default_factory=lambda: secrets.token_hex(3))

    @property
    def name(self) -> str:
        """``k3smig-<side>-<hash of run, namespace and claim>-<session>``: a fresh pod per session.

        A new name each time keeps a session from meeting the pod of the previous one while that is
        still being deleted; the run id label is what sweeps go by.
        """
        digest = hashlib.sha256(f"{self.run_id}\0{self.namespace}\0{self.claim}".encode()).hexdigest()
        return f"k3smig-{'src' if self.side == 'source' else 'dst'}-{digest[:10]}-{self.session}"

    @property
    def user_text(self) -> str:
        """``uid:gid`` (``0:0`` for root)."""
        return "0:0" if self.user is None else f"{self.user[0]}:{self.user[1]}"


def helper_pod(spec: HelperSpec) -> Obj:
    """The helper's Pod object.

    Examples:
        >>> pod = helper_pod(HelperSpec("shop", "data", "source", "run-1"))
        >>> pod["spec"]["volumes"][0]["persistentVolumeClaim"]
        {'claimName': 'data', 'readOnly': True}
    """
    read_only = spec.side == "source"
    security: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    container_security: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if spec.user is not None:
        security |= {"runAsUser": spec.user[0], "runAsGroup": spec.user[1], "runAsNonRoot": spec.user[0] != 0}
        container_security["capabilities"] = {"drop": ["ALL"]}
    else:
        security |= {"runAsUser": 0, "runAsGroup": 0}
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": spec.deadline,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 1,
        "securityContext": security,
        "containers": [{
            "name": "helper",
            "image": spec.image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["sleep", str(spec.deadline)],
            "env": [{"name": "VOLUME_DIR", "value": MOUNT_PATH}],
            "workingDir": MOUNT_PATH,
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "512Mi"}},
            "securityContext": container_security,
            "volumeMounts": [{"name": "data", "mountPath": MOUNT_PATH, "readOnly": read_only}],
        }],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": spec.claim, "readOnly": read_only}}],
    }
    if spec.node:
        pod_spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [spec.node]}]}]
        }}}
    if spec.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": spec.name,
            "namespace": spec.namespace,
            "labels": {MANAGED_BY: "k3smig", COMPONENT: "volume-helper", RUN_LABEL: label_value(spec.run_id),
                       SIDE_LABEL: spec.side},
            "annotations": {CLAIM_ANNOTATION: spec.claim},
        },
        "spec": pod_spec,
    }


@dataclass(frozen=True)
class Placement:
    """Where the claim is in use: the node and tolerations of a running pod that mounts it."""

    node: str = ""
    tolerations: tuple[dict[str, Any], ...] = ()
    pods: tuple[str, ...] = ()


def placement(kube: Kube, namespace: str, claim: str) -> Placement:
    """The node (and tolerations) of the running pods that mount ``claim``; empty when none runs."""
    pods = kube.json("GET", f"/api/v1/namespaces/{namespace}/pods", counter="lists").get("items") or []
    users = []
    for pod in pods:
        if get_path(pod, "metadata.labels", {}).get(MANAGED_BY) == "k3smig" or get_path(pod, "status.phase") not in (
                "Running", "Pending"):
            continue
        claims = [get_path(v, "persistentVolumeClaim.claimName") for v in get_path(pod, "spec.volumes", []) or []]
        if claim in claims and get_path(pod, "spec.nodeName"):
            users.append(pod)
    if not users:
        return Placement()
    first = users[0]
    return Placement(node=str(get_path(first, "spec.nodeName")),
                     tolerations=tuple(get_path(first, "spec.tolerations", []) or []),
                     pods=tuple(str(get_path(p, "metadata.name")) for p in users))


class PodSecurityRefusedError(FatalError):
    """The namespace's Pod Security admission refused the helper pod."""


@dataclass
class Helper:
    """A created helper pod (delete it with :meth:`delete`; :func:`helper` does it for you)."""

    kube: Kube
    spec: HelperSpec
    node: str = ""
    events: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """Pod name."""
        return self.spec.name

    @property
    def where(self) -> str:
        """``pod ns/name on node n`` for reports."""
        return f"pod {self.spec.namespace}/{self.name}" + (f" on node {self.node}" if self.node else "")

    def create(self) -> None:
        """Create the pod.

        Raises:
            PodSecurityRefusedError: the namespace enforces a Pod Security level the helper does not meet.
            SourceError | TargetError: any other refusal (403 names the RBAC rule).
        """
        ns = self.spec.namespace
        path = f"/api/v1/namespaces/{ns}/pods"
        resp = self.kube.request("POST", path, counter="writes", body=helper_pod(self.spec), accept=(403,))
        if resp.status == 403:
            found = _PSA.search(str(resp.body.get("message", "")))
            if found:
                raise PodSecurityRefusedError(
                    f"the namespace's Pod Security admission ({found.group(1)}) refuses the {self.spec.side} "
                    f"helper for claim {self.spec.claim}, which runs as {self.spec.user_text}",
                    resource=f"namespace/{ns}",
                    fix=f"label the namespace `pod-security.kubernetes.io/enforce=baseline` for the migration "
                        f"(`kubectl label ns {ns} pod-security.kubernetes.io/enforce=baseline --overwrite`), "
                        "or let the helper run as the volume's owner (no chown needed)")
            raise resp.error()

    def wait_running(self, timeout: float = 300.0, *, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> None:
        """Wait until the helper is Ready; on failure say why (status, then the pod's Events).

        Raises:
            SourceError | TargetError: the pod failed, cannot pull its image, or is not Ready in time.
        """
        end = clock() + timeout
        path = f"/api/v1/namespaces/{self.spec.namespace}/pods/{self.name}"
        why = "not scheduled yet"
        while True:
            resp = self.kube.request("GET", path, counter="gets", accept=(404,))
            pod = resp.body if resp.ok else {}
            if not pod:
                raise self._fail("was deleted while starting")
            self.node = str(get_path(pod, "spec.nodeName", "") or "")
            phase = get_path(pod, "status.phase", "")
            ready = condition(pod, "Ready") or {}
            if phase == "Running" and ready.get("status") == "True":
                return
            if phase in ("Failed", "Succeeded"):
                raise self._fail(f"ended ({phase}) before it was used")
            for cs in get_path(pod, "status.containerStatuses", []) or []:
                waiting = (cs.get("state") or {}).get("waiting") or {}
                if waiting.get("reason") in _BAD_WAITING:
                    raise self._fail(f"cannot start: {waiting['reason']} (image {self.spec.image})")
            scheduled = condition(pod, "PodScheduled") or {}
            why = f"unschedulable ({scheduled.get('reason')})" if scheduled.get("status") == "False" else \
                f"phase {phase or 'Pending'}"
            if clock() >= end:
                raise self._fail(f"is not Ready after {timeout:g}s: {why}")
            sleep(min(1.0, max(0.0, end - clock())))

    def _events(self) -> list[str]:
        try:
            items = self.kube.json("GET", f"/api/v1/namespaces/{self.spec.namespace}/events", counter="lists",
                                   query={"fieldSelector": f"involvedObject.name={self.name}"}).get("items") or []
        except FatalError:
            return []
        return [f"{e.get('reason')}: {str(e.get('message', ''))[:160]}" for e in items[-3:]]

    def _fail(self, what: str) -> FatalError:
        self.events = self._events()
        hint = "; events: " + " | ".join(self.events) if self.events else ""
        fix = ("if the claim is attached to a pod on another node, scale that workload down; if the image "
               "cannot be pulled, set volume_helper_image to an image your nodes can pull (a mirror)")
        return fatal_class(self.spec.side)(f"helper pod {self.spec.namespace}/{self.name} {what}{hint}", fix=fix,
                                           resource=f"persistentvolumeclaim/{self.spec.claim}",
                                           namespace=self.spec.namespace)

    def delete(self, *, wait: bool = False, timeout: float = 60.0) -> bool:
        """Delete the pod now (grace 0); True when it existed. ``wait``: until it is gone."""
        path = f"/api/v1/namespaces/{self.spec.namespace}/pods/{self.name}"
        resp = self.kube.request("DELETE", path, counter="writes", accept=(404,),
                                 body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        existed = resp.ok
        if existed and wait:
            end = time.monotonic() + timeout
            while self.kube.request("GET", path, counter="gets", accept=(404,)).ok and time.monotonic() < end:
                time.sleep(0.2)
        return existed


def _helper_pods(kube: Kube) -> list[Obj]:
    found = kube.json("GET", "/api/v1/pods", counter="lists", query={"labelSelector": HELPER_SELECTOR})
    return list(found.get("items") or [])


def sweep(kube: Kube, *, keep_run: str = "") -> list[str]:
    """Delete every helper pod on this cluster not owned by ``keep_run`` (left by crashed runs).

    Returns:
        ``namespace/name`` of the pods deleted.
    """
    pods = _helper_pods(kube)
    gone = []
    for pod in pods:
        labels = get_path(pod, "metadata.labels", {}) or {}
        if keep_run and labels.get(RUN_LABEL) == label_value(keep_run):
            continue
        ns, name = str(get_path(pod, "metadata.namespace")), str(get_path(pod, "metadata.name"))
        kube.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}", counter="writes", accept=(404,),
                     body={"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})
        gone.append(f"{ns}/{name}")
    if gone:
        logger.warning("removed %d helper pod(s) left by an earlier run: %s", len(gone), ", ".join(gone))
    return gone


def remaining(kube: Kube) -> list[str]:
    """Helper pods still on the cluster (a test and the report check that none is left)."""
    pods = _helper_pods(kube)
    return sorted(f"{get_path(p, 'metadata.namespace')}/{get_path(p, 'metadata.name')}" for p in pods)


__all__ = ["DEFAULT_IMAGE", "HELPER_SELECTOR", "Helper", "HelperSpec", "Placement", "PodSecurityRefusedError",
           "helper_pod", "label_value", "placement", "remaining", "sweep"]
