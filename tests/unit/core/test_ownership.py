"""Ownership plans (docs/safety.md case 22, docs/cleaning-rules.md §10): from the target pod spec, never a blanket 1000.

Pod specs are trimmed from the upstream Helm charts (grafana/grafana, prometheus-community/prometheus);
volumes are real directories chowned as root, and the result is proven with a manifest comparison.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.manifest import compare, manifest_from_dir
from k3smig_lib.core.ownership import apply_ownership, plan_ownership
from k3smig_lib.errors import TargetError

GRAFANA: dict[str, Any] = {
    "securityContext": {"runAsNonRoot": True, "runAsUser": 472, "runAsGroup": 472, "fsGroup": 472},
    "initContainers": [{
        "name": "init-chown-data", "image": "docker.io/library/busybox:1.31.1",
        "securityContext": {"runAsNonRoot": False, "runAsUser": 0, "capabilities": {"add": ["CHOWN"]}},
        "command": ["chown", "-R", "472:472", "/var/lib/grafana"],
        "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/grafana"}],
    }],
    "containers": [{
        "name": "grafana", "image": "docker.io/grafana/grafana:11.1.0",
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/grafana/grafana.ini", "subPath": "grafana.ini"},
            {"name": "storage", "mountPath": "/var/lib/grafana"},
        ],
    }],
    "volumes": [{"name": "config", "configMap": {"name": "grafana"}},
                {"name": "storage", "persistentVolumeClaim": {"claimName": "grafana"}}],
}

PROMETHEUS: dict[str, Any] = {
    "securityContext": {"runAsUser": 65534, "runAsNonRoot": True, "runAsGroup": 65534, "fsGroup": 65534},
    "containers": [
        {"name": "prometheus-server-configmap-reload",
         "image": "quay.io/prometheus-operator/prometheus-config-reloader:v0.74.0",
         "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config", "readOnly": True}]},
        {"name": "prometheus-server", "image": "quay.io/prometheus/prometheus:v2.53.0",
         "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/config"},
                          {"name": "storage-volume", "mountPath": "/data"}]},
    ],
    "volumes": [{"name": "config-volume", "configMap": {"name": "prometheus-server"}},
                {"name": "storage-volume", "persistentVolumeClaim": {"claimName": "prometheus-server"}}],
}

VAULTWARDEN: dict[str, Any] = {
    "containers": [{"name": "vaultwarden", "image": "vaultwarden/server:1.30.5",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "vaultwarden-data"}}],
}


def _volume(root: Path, uid: int = 1000, gid: int = 1000) -> Path:
    """A small volume as it sits on the source: uid 1000, 0600 files, a 0700 dir, one symlink."""
    root.mkdir()
    (root / "db").mkdir(mode=0o700)
    (root / "db" / "grafana.db").write_bytes(b"SQLite format 3\x00" + bytes(100))
    os.chmod(root / "db" / "grafana.db", 0o600)
    (root / "plugins").mkdir()
    os.symlink("../db/grafana.db", root / "plugins" / "db-link")
    for dirpath, dirs, files in os.walk(root):
        for name in [dirpath, *[os.path.join(dirpath, n) for n in dirs + files]]:
            os.chown(name, uid, gid, follow_symlinks=False)
    return root


def test_grafana_volume_is_chowned_to_472_and_proven_by_manifest(tmp_path: Path) -> None:
    vol = _volume(tmp_path / "grafana")
    source = manifest_from_dir(vol)

    plan = plan_ownership("monitoring/grafana", source, GRAFANA)

    assert (plan.target_uid, plan.target_gid, plan.action) == (472, 472, "chown")
    assert plan.source == "pod securityContext"
    assert plan.histogram == [{"uid": 1000, "gid": 1000, "files": 2, "dirs": 3, "modes": "0600,0700,0755"}]
    assert plan.containers == ["grafana"]  # init-chown-data (root) is ignored
    assert "target runs as 472:472 (grafana); 5 entries will be chowned" in plan.note
    assert apply_ownership(vol, plan) == 5
    target = manifest_from_dir(vol)
    assert {(e.uid, e.gid) for e in target.entries.values()} == {(472, 472)}
    assert compare(source, target, remap=plan).equal
    assert dict(compare(source, target).changed)["db/grafana.db"] == ["uid", "gid"]
    assert apply_ownership(vol, plan) == 0  # a second run changes nothing


def test_prometheus_volume_gets_nobody_65534(tmp_path: Path) -> None:
    source = manifest_from_dir(_volume(tmp_path / "prom", uid=0, gid=0))
    plan = plan_ownership("prometheus-server", source, PROMETHEUS)
    assert (plan.target_uid, plan.target_gid, plan.action) == (65534, 65534, "chown")
    assert plan.containers == ["prometheus-server"]  # the read-only reloader does not write the data
    assert plan.expected(0, 0) == (65534, 65534)


def test_pod_without_security_context_preserves_source_owners(tmp_path: Path) -> None:
    vol = _volume(tmp_path / "vw", uid=1000, gid=1000)
    source = manifest_from_dir(vol)
    plan = plan_ownership("vaultwarden-data", source, VAULTWARDEN)
    assert (plan.target_uid, plan.target_gid, plan.action) == (None, None, "preserve")
    assert plan.source == "source owners"
    assert "never a blanket 1000" in plan.note
    assert plan.expected(1000, 1000) == (1000, 1000) and plan.expected(33, 33) == (33, 33)
    assert apply_ownership(vol, plan) == 0
    assert compare(source, manifest_from_dir(vol), remap=plan).equal


def test_no_pod_spec_preserves_source_owners() -> None:
    from k3smig_lib.core.manifest import Manifest

    plan = plan_ownership("data", Manifest({}, "empty"), None)
    assert (plan.action, plan.source) == ("preserve", "source owners")


def test_explicit_root_user_keeps_owners_with_a_note(tmp_path: Path) -> None:
    spec = {**VAULTWARDEN, "securityContext": {"runAsUser": 0}}
    plan = plan_ownership("vaultwarden-data", manifest_from_dir(_volume(tmp_path / "v")), spec)
    assert plan.action == "preserve"
    assert plan.note.startswith("the pod runs as root, so file owners are kept")


def test_container_security_context_overrides_the_pod_level(tmp_path: Path) -> None:
    spec = {**VAULTWARDEN, "securityContext": {"runAsUser": 1000},
            "containers": [{**VAULTWARDEN["containers"][0], "securityContext": {"runAsUser": 999}}]}
    plan = plan_ownership("vaultwarden-data", manifest_from_dir(_volume(tmp_path / "v")), spec)
    assert (plan.target_uid, plan.target_gid) == (999, None)
    assert plan.expected(1000, 1000) == (999, 1000)


def test_fs_group_alone_changes_only_the_group(tmp_path: Path) -> None:
    vol = _volume(tmp_path / "v")
    spec = {**VAULTWARDEN, "securityContext": {"fsGroup": 2000}}
    plan = plan_ownership("data", manifest_from_dir(vol), spec)
    assert (plan.target_uid, plan.target_gid, plan.action) == (None, 2000, "chown")
    apply_ownership(vol, plan)
    assert {(e.uid, e.gid) for e in manifest_from_dir(vol).entries.values()} == {(1000, 2000)}


def test_source_already_owned_by_the_target_user_needs_no_chown(tmp_path: Path) -> None:
    plan = plan_ownership("grafana", manifest_from_dir(_volume(tmp_path / "g", 472, 472)), GRAFANA)
    assert plan.action == "preserve"
    assert plan.note.endswith("the source already matches")


def test_writers_running_as_different_users_are_an_error_not_a_guess(tmp_path: Path) -> None:
    spec = {**GRAFANA, "containers": [
        *GRAFANA["containers"],
        {"name": "sidecar", "securityContext": {"runAsUser": 1000},
         "volumeMounts": [{"name": "storage", "mountPath": "/var/lib/grafana"}]},
    ]}
    with pytest.raises(TargetError, match=r"different users \(grafana=\(472, 472\), sidecar=\(1000, 472\)\)"):
        plan_ownership("grafana", manifest_from_dir(_volume(tmp_path / "g")), spec)


def test_spec_that_does_not_mount_the_volume_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"does not mount volume 'loki'"):
        plan_ownership("loki", manifest_from_dir(_volume(tmp_path / "g")), GRAFANA)


def test_chown_keeps_setgid_bits_the_kernel_clears(tmp_path: Path) -> None:
    vol = _volume(tmp_path / "v")
    tool = vol / "plugins" / "tool"
    tool.write_bytes(b"#!/bin/sh\n")
    os.chown(tool, 1000, 1000)
    os.chmod(tool, 0o2755)
    plan = plan_ownership("grafana", manifest_from_dir(vol), GRAFANA)
    apply_ownership(vol, plan)
    assert stat.S_IMODE(os.lstat(tool).st_mode) == 0o2755
    assert os.lstat(tool).st_uid == 472


def test_apply_refuses_a_symlinked_root(tmp_path: Path) -> None:
    vol = _volume(tmp_path / "g")
    os.symlink(vol, tmp_path / "link")
    plan = plan_ownership("grafana", manifest_from_dir(vol), GRAFANA)
    with pytest.raises(TargetError, match=r"not a directory \(a symlink\?\)"):
        apply_ownership(tmp_path / "link", plan)
