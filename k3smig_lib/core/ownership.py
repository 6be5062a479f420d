"""Ownership plans: which numeric owner each volume gets on K3s, derived, never hard-coded.

K3s ``local-path`` volumes are hostPath directories, so Kubernetes never applies ``fsGroup`` to them
(docs/cleaning-rules.md §9). The data phase must therefore set owners itself, and a blanket
``chown 1000:1000`` breaks Grafana (472) and Prometheus (65534) (§10). The rule:

- the target owner is the ``runAsUser`` (container level, else pod level) of the *regular* containers
  that mount the volume read-write; the group is the pod's ``fsGroup``, else ``runAsGroup``;
  init containers are ignored (Grafana's ``init-chown-data`` runs as root on purpose);
- a pod running as root (uid 0) or saying nothing keeps the source's numeric owners;
- containers that disagree are an error, not a guess.

The plan shows the owner histogram of the source manifest before anything is copied
(migtools/crane#213, #623), and :func:`apply_ownership` carries it out with ``lchown``.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from k3smig_lib.core.manifest import Manifest
from k3smig_lib.core.objects import Obj, get_path
from k3smig_lib.errors import TargetError
from k3smig_lib.log import logger


@dataclass
class OwnershipPlan:
    """How one volume's owners are set on the target.

    Attributes:
        volume: the volume (PVC) name.
        histogram: one row per source ``(uid, gid)``: ``files`` (non-directories), ``dirs`` and the
            distinct ``modes`` seen, most frequent owner first.
        target_uid: uid every entry gets, or ``None`` to keep each entry's uid.
        target_gid: gid every entry gets, or ``None`` to keep each entry's gid.
        source: where the target owner came from.
        action: ``chown`` when some entry's owner changes, else ``preserve``.
        note: the reasoning, for the report.
    """

    volume: str
    histogram: list[dict[str, Any]]
    target_uid: int | None
    target_gid: int | None
    source: Literal["pod securityContext", "source owners"]
    action: Literal["preserve", "chown"]
    note: str
    containers: list[str] = field(default_factory=list)

    def expected(self, uid: int, gid: int) -> tuple[int, int]:
        """The owner an entry owned by ``uid:gid`` on the source must have on the target.

        Examples:
            >>> plan = OwnershipPlan("grafana", [], 472, 472, "pod securityContext", "chown", "")
            >>> plan.expected(1000, 1000)
            (472, 472)
        """
        if self.action != "chown":
            return uid, gid
        return (uid if self.target_uid is None else self.target_uid,
                gid if self.target_gid is None else self.target_gid)


def owner_histogram(manifest: Manifest) -> list[dict[str, Any]]:
    """Count entries per numeric owner, with the distinct modes, most frequent owner first."""
    files: Counter[tuple[int, int]] = Counter()
    dirs: Counter[tuple[int, int]] = Counter()
    modes: dict[tuple[int, int], set[int]] = {}
    for e in manifest.entries.values():
        key = (e.uid, e.gid)
        (dirs if e.type == "d" else files)[key] += 1
        if e.type != "l":
            modes.setdefault(key, set()).add(e.mode)
    keys = sorted(set(files) | set(dirs), key=lambda k: (-(files[k] + dirs[k]), k))
    return [
        {"uid": k[0], "gid": k[1], "files": files[k], "dirs": dirs[k],
         "modes": ",".join(f"{m:04o}" for m in sorted(modes.get(k, set())))}
        for k in keys
    ]


def _mounting_containers(volume_id: str, spec: Obj) -> list[Obj]:
    """Regular containers mounting the volume read-write (by pod volume name or PVC claim name)."""
    key = volume_id.rsplit("/", 1)[-1]
    names = {
        str(v.get("name")) for v in spec.get("volumes") or []
        if v.get("name") == key or get_path(v, "persistentVolumeClaim.claimName") == key
    }
    if not names:
        raise TargetError(
            f"the target pod spec does not mount volume {volume_id!r}",
            fix="pass the pod spec of the workload that mounts this PVC, or None to keep source owners",
        )
    return [
        c for c in spec.get("containers") or []
        if any(m.get("name") in names and not m.get("readOnly") for m in c.get("volumeMounts") or [])
    ]


def _owner_of(container: Obj, spec: Obj) -> tuple[int | None, int | None]:
    pod_sc = spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
    gid = pod_sc.get("fsGroup", sc.get("runAsGroup", pod_sc.get("runAsGroup")))
    return (None if uid is None else int(uid)), (None if gid is None else int(gid))


def plan_ownership(volume_id: str, manifest: Manifest, pod_spec: Obj | None) -> OwnershipPlan:
    """Derive the target owner of one volume from the target pod spec and the source manifest.

    Args:
        volume_id: the PVC claim name or pod volume name (``ns/claim`` accepted).
        manifest: the source manifest of the volume.
        pod_spec: the *target* pod spec (``spec.template.spec``), or ``None`` when unknown.

    Returns:
        The plan; ``action`` is ``chown`` only when some source owner differs from the target owner.

    Raises:
        TargetError: the spec does not mount the volume, or its writers run as different users.

    Examples:
        >>> spec = {"securityContext": {"runAsUser": 472, "fsGroup": 472},
        ...         "volumes": [{"name": "storage", "persistentVolumeClaim": {"claimName": "grafana"}}],
        ...         "containers": [{"name": "grafana", "volumeMounts": [{"name": "storage"}]}]}
        >>> plan_ownership("grafana", Manifest({}, "x"), spec).target_uid
        472
    """
    histogram = owner_histogram(manifest)
    if pod_spec is None:
        return _preserve(volume_id, histogram, "no target pod spec given; numeric source owners are kept")
    writers = _mounting_containers(volume_id, pod_spec)
    owners = {_owner_of(c, pod_spec) for c in writers}
    if len(owners) > 1:
        shown = ", ".join(f"{c.get('name')}={_owner_of(c, pod_spec)}" for c in writers)
        raise TargetError(
            f"containers writing volume {volume_id!r} run as different users ({shown})",
            fix="align runAsUser/runAsGroup of those containers, or set the owner of the volume explicitly",
        )
    names = [str(c.get("name")) for c in writers]
    if not owners:
        return _preserve(volume_id, histogram, "no regular container mounts the volume read-write; "
                         "numeric source owners are kept")
    uid, gid = owners.pop()
    root_note = ""
    if uid == 0:
        uid, root_note = None, "the pod runs as root, so file owners are kept; "
    if uid is None and gid is None:
        return _preserve(volume_id, histogram, root_note + "the target pod spec sets no runAsUser/fsGroup; "
                         "numeric source owners are kept (never a blanket 1000)", names)
    plan = OwnershipPlan(volume=volume_id, histogram=histogram, target_uid=uid, target_gid=gid,
                         source="pod securityContext", action="chown", note="", containers=names)
    changes = sum(r["files"] + r["dirs"] for r in histogram
                  if plan.expected(r["uid"], r["gid"]) != (r["uid"], r["gid"]))
    want = f"{'*' if uid is None else uid}:{'*' if gid is None else gid}"
    who = f"{root_note}target runs as {want} ({', '.join(names)})"
    if changes == 0:
        plan.action = "preserve"
        plan.note = f"{who}; the source already matches"
    else:
        plan.note = f"{who}; {changes} entries will be chowned"
    return plan


def _preserve(
    volume: str, histogram: list[dict[str, Any]], note: str, names: list[str] | None = None
) -> OwnershipPlan:
    return OwnershipPlan(volume=volume, histogram=histogram, target_uid=None, target_gid=None,
                         source="source owners", action="preserve", note=note, containers=names or [])


def apply_ownership(root: Path, plan: OwnershipPlan) -> int:
    """Carry out a plan: numeric ``lchown`` of every entry whose owner differs; symlinks never followed.

    Linux clears setuid/setgid on files when their owner changes; those bits are restored so the
    manifest comparison still holds.

    Args:
        root: the restored volume root (a real directory).
        plan: the plan from :func:`plan_ownership`.

    Returns:
        The number of entries whose owner changed (0 for ``preserve``, and on a second run).

    Raises:
        TargetError: ``root`` is not a real directory, or chown is not permitted (run as root).
    """
    if plan.action != "chown":
        return 0
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise TargetError(f"cannot set owners under {root}: not a directory (a symlink?)")
    changed = 0
    stack = [str(root)]
    try:
        changed += _chown_one(str(root), st, plan)
        while stack:
            with os.scandir(stack.pop()) as it:
                for de in it:
                    est = de.stat(follow_symlinks=False)
                    changed += _chown_one(de.path, est, plan)
                    if stat.S_ISDIR(est.st_mode):
                        stack.append(de.path)
    except PermissionError as e:
        raise TargetError(f"cannot set owners under {root}: {e}",
                          fix="run the loader as root (numeric chown needs CAP_CHOWN)") from e
    logger.info("ownership of %s: %d entries chowned (%s)", plan.volume, changed, plan.note)
    return changed


def _chown_one(path: str, st: os.stat_result, plan: OwnershipPlan) -> int:
    uid, gid = plan.expected(st.st_uid, st.st_gid)
    if (uid, gid) == (st.st_uid, st.st_gid):
        return 0
    os.chown(path, uid, gid, follow_symlinks=False)
    special = st.st_mode & (stat.S_ISUID | stat.S_ISGID)
    if special and not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    return 1


__all__ = ["OwnershipPlan", "apply_ownership", "owner_histogram", "plan_ownership"]
