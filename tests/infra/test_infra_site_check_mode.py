"""Phase 20's dry run, for real: site.yml in check mode on a fresh Debian container, through the driver.

A fresh VM has no K3s, no helm and no cluster, so in check mode the k3s and helm roles report what
they would change, and the chart roles say their release is not checked yet (skipped), without
failing; the upgrade Plans and the backup timer are planned, the first backup is not taken. The K3s
and helm binaries come from the airgap stand-ins the Molecule scenarios use, restic from this machine
(no download here); the Scaleway VM itself, systemd and the charts are not covered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra_helpers import ANSIBLE_DIR, VENV_BIN

from k3smig_lib.infra.ansible import run_playbook
from k3smig_lib.infra.render import VmSettings, render_extravars

pytestmark = pytest.mark.infra

HERE = Path(__file__).parent
ROLES_DIR = ANSIBLE_DIR / "roles"


@pytest.fixture
def fresh_host(molecule_image: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CONTAINERS_CONF", str(HERE / "containers.conf"))
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
    # The backup role's credentials, as an operator's .envrc provides them (test values only).
    monkeypatch.setenv("K3SMIG_BACKUP_PASSWORD", "check-mode-restic-password")
    monkeypatch.setenv("K3SMIG_BACKUP_ACCESS_KEY", "check-mode-access-key")
    monkeypatch.setenv("K3SMIG_BACKUP_SECRET_KEY", "check-mode-secret-key")
    name = f"k3smig-dryrun-{os.getpid()}"
    subprocess.run(
        ["podman", "run", "-d", "--rm", "--name", name, "--network", "none", molecule_image, "sleep", "infinity"],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], check=False, capture_output=True)


@pytest.mark.timeout(900)
def test_site_check_mode_on_a_fresh_host_plans_k3s_and_helm_and_fails_nothing(fresh_host: str) -> None:
    restic = shutil.which("restic")
    if restic is None:
        pytest.fail("restic is missing: apt-get install restic (make system-deps)")
    extravars = render_extravars(VmSettings(backup_bucket="k3smig-check-mode")) | {
        "backup_restic_airgap_binary_src": restic,
        # get_url reaches GitHub even in check mode; the container has no network.
        "system_upgrade_install_controller": False,
        "k3s_airgap": True,
        "k3s_airgap_binary_src": str(ROLES_DIR / "k3s/molecule/default/files/k3s"),
        "helm_airgap": True,
        "helm_airgap_binary_src": str(ROLES_DIR / "helm/molecule/default/files/helm"),
    }
    inventory = (
        "[k3s_servers]\n"
        f"{fresh_host} ansible_connection=containers.podman.podman ansible_python_interpreter=/usr/bin/python3 "
        "k3s_node_external_ip=192.0.2.10\n"
    )
    result = run_playbook(ANSIBLE_DIR / "site.yml", inventory, check=True, extravars=extravars)
    assert result.failures == [], [(f["task"], f["msg"]) for f in result.failures]
    assert result.status == "successful"
    by_task = {(t["role"], t["task"]): t for t in result.tasks}
    assert by_task[("k3s", "Copy the K3s binary from the airgap bundle")]["status"] == "changed"
    assert by_task[("k3s", "Write the K3s configuration")]["status"] == "changed"
    assert by_task[("helm", "Copy the helm binary from the airgap bundle")]["status"] == "changed"
    for role in ("ingress_nginx", "cert_manager", "external_dns"):
        assert by_task[(role, "Stop when K3s or Helm is missing outside check mode")]["status"] == "ok"
        assert (role, "Install or upgrade the " + role.replace("_", "-") + " release") not in by_task
    assert by_task[("system_upgrade", "Write the K3s upgrade Plans")]["status"] == "changed"
    assert by_task[("backup", "Install the backup service and timer units")]["status"] == "changed"
    assert by_task[("backup", "Take this node's first backup unless it already has one")]["status"] == "skipped"
    # storage_class is local-path: Longhorn is not installed
    assert {t["status"] for (role, _), t in by_task.items() if role == "longhorn"} <= {"skipped"}
    # Check mode left the host untouched.
    probe = subprocess.run(["podman", "exec", fresh_host, "test", "-e", "/etc/rancher/k3s/config.yaml"], check=False)
    assert probe.returncode == 1
