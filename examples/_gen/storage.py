"""PersistentVolumeClaims bound to PersistentVolumes the Scaleway CSI driver provisioned.

The scw-bssd classes bind on first consumer: the scheduler writes ``volume.kubernetes.io/selected-node``,
``csi.scaleway.com`` creates a block volume in the zone and the PV ``pvc-<claim uid>``, and the PV
controller binds both and marks the claim with its bookkeeping annotations.
"""

from __future__ import annotations

from _gen.common import ZONE, Obj, det_bytes, ts_add, uid
from _gen.server import KCM, KUBECTL, Cluster, Write, applied, object_uid
from _gen.topology import Node

PROVISIONER = "csi.scaleway.com"
RECLAIM = {"scw-bssd": "Delete", "scw-bssd-retain": "Retain"}
_PROVISIONER_ID = "1707120861419-8081-csi.scaleway.com"


def volume_handle(namespace: str, claim: str) -> str:
    """The CSI volume handle of a claim's Scaleway block volume (``fr-par-1/<uuid>``)."""
    return f"{ZONE}/{uid('scw-volume', namespace, claim)}"


def provision(c: Cluster, pvc: Obj, created: str, node: Node, *, manager: str = KUBECTL) -> Obj:
    """Create ``pvc`` bound to a freshly provisioned PV; return the claim."""
    ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    claim_uid = object_uid(pvc)
    spec = pvc["spec"]
    sc = spec["storageClassName"]
    size = spec["resources"]["requests"]["storage"]
    pv_name = f"pvc-{claim_uid}"
    scheduled, bound = ts_add(created, 1), ts_add(created, 4)
    _persistent_volume(c, pv_name, pvc, claim_uid, ts_add(created, 3))
    writes = (
        Write(
            "kube-scheduler",
            scheduled,
            {"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node.name}}},
        ),
        Write(
            KCM,
            bound,
            {
                "metadata": {
                    "annotations": {
                        "pv.kubernetes.io/bind-completed": "yes",
                        "pv.kubernetes.io/bound-by-controller": "yes",
                        "volume.beta.kubernetes.io/storage-provisioner": PROVISIONER,
                        "volume.kubernetes.io/storage-provisioner": PROVISIONER,
                    }
                },
                "spec": {"volumeName": pv_name},
            },
        ),
        Write(
            KCM,
            bound,
            {
                "status": {
                    "accessModes": list(spec["accessModes"]),
                    "capacity": {"storage": size},
                    "phase": "Bound",
                }
            },
            "status",
        ),
    )
    admitted = {"metadata": {"finalizers": ["kubernetes.io/pvc-protection"]}}
    assert sc in RECLAIM, f"unknown storage class {sc} for {ns}/{name}"
    return applied(c, pvc, created, manager=manager, writes=writes, admitted=admitted)


def _persistent_volume(c: Cluster, pv_name: str, pvc: Obj, claim_uid: str, created: str) -> Obj:
    ns, name = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    spec = pvc["spec"]
    sc = spec["storageClassName"]
    claim_rv = str(30_100_000 + int.from_bytes(det_bytes(f"claimrv:{ns}/{name}", 3), "big") % 900_000)
    zone_term = {"matchExpressions": [{"key": "topology.csi.scaleway.com/zone", "operator": "In", "values": [ZONE]}]}
    annotations = {
        "pv.kubernetes.io/provisioned-by": PROVISIONER,
        "volume.kubernetes.io/provisioner-deletion-secret-name": "",
        "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
    }
    finalizers = ["external-provisioner.volume.kubernetes.io/finalizer", "kubernetes.io/pv-protection"]
    claim_ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": name, "namespace": ns}
    csi = {
        "driver": PROVISIONER,
        "fsType": "ext4",
        "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": _PROVISIONER_ID},
        "volumeHandle": volume_handle(ns, name),
    }
    pv_spec = {
        "accessModes": list(spec["accessModes"]),
        "capacity": {"storage": spec["resources"]["requests"]["storage"]},
        "claimRef": {**claim_ref, "resourceVersion": claim_rv, "uid": claim_uid},
        "csi": csi,
        "nodeAffinity": {"required": {"nodeSelectorTerms": [zone_term]}},
        "persistentVolumeReclaimPolicy": RECLAIM[sc],
        "storageClassName": sc,
        "volumeMode": "Filesystem",
    }
    meta = {"name": pv_name, "annotations": annotations, "finalizers": finalizers}
    manifest: Obj = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": pv_spec}
    status = Write(
        KCM, ts_add(created, 1), {"status": {"lastPhaseTransitionTime": ts_add(created, 1), "phase": "Bound"}}, "status"
    )
    return applied(c, manifest, created, manager="csi-provisioner", writes=(status,))
