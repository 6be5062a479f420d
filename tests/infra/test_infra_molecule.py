"""Every role converges with Molecule (podman) on Debian 12 containers built offline, twice.

The second converge must change nothing (Molecule's idempotence step), and verify.yml checks what the
roles left on the hosts. k3s/cluster runs the roles of site.yml's K3s and day-2 plays on three servers
and an agent, in check mode first. The backup scenario writes to a real S3 server (moto) and restores
from it. What a container without network, cluster or systemd cannot exercise is named in each
scenario's molecule.yml and in NOT_COVERED below; phase 20 runs it in check mode, then for real.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from infra_helpers import ANSIBLE_DIR, MOLECULE_IMAGE, ROLE_SCENARIOS, VENV_BIN, molecule_env, venv_tool

pytestmark = pytest.mark.infra

NOT_COVERED = {
    "k3s/default": "download + sha256 check, systemd service, node readiness, kubeconfig fetch",
    "k3s/cluster": "K3s forming the etcd quorum and the agent joining, the controller download and upgrade jobs, "
                   "Longhorn's packages and release, systemd services",
    "helm/default": "get.helm.sh download, pip install of the Kubernetes client",
    "ingress_nginx/default": "chart repository, Helm release, readiness wait",
    "cert_manager/default": "chart repository, Helm release, ClusterIssuers, readiness wait",
    "external_dns/default": "credentials Secret, chart repository, Helm release, readiness wait",
    "backup/default": "apt install of restic, the timer firing under systemd, Scaleway Object Storage itself",
}
#: Scenarios `molecule test` runs on its own; backup/default needs the S3 server this module starts.
SELF_CONTAINED = [s for s in NOT_COVERED if s != "backup/default"]
#: Seconds before a scenario is taken as hung: four containers converge k3s/cluster (check mode, converge,
#: idempotence, verify), which took more than 20 minutes on a shared, loaded 2-core machine.
HUNG_AFTER = {"k3s/cluster": 3600}


def _scenario_dir(scenario: str) -> Path:
    role, name = scenario.split("/")
    return ANSIBLE_DIR / "roles" / role / "molecule" / name


def test_every_scenario_documents_what_it_cannot_cover_and_every_role_has_one() -> None:
    assert set(NOT_COVERED) == {s for scenarios in ROLE_SCENARIOS.values() for s in scenarios}
    for scenario in NOT_COVERED:
        text = (_scenario_dir(scenario) / "molecule.yml").read_text()
        assert "Not covered here" in text
        assert MOLECULE_IMAGE in text


_RECAP = re.compile(r"(k3smig-molecule-[\w-]+)\s+: ok=(\d+)\s+changed=(\d+)")


def _recaps(out: str) -> list[tuple[str, int, int]]:
    return [(host, int(ok), int(changed)) for host, ok, changed in _RECAP.findall(out)]


def _molecule_runs(out: str, step: str) -> dict[str, int]:
    """Changed tasks per host in the recap of one Molecule step (the text between its start and end lines).

    Molecule logs its steps on stderr and tees Ansible's output to stdout: ``out`` is both streams in one
    pipe, unbuffered (:func:`infra_helpers.molecule_env`), so a recap falls between its step's lines.
    """
    # Molecule prints "[scenario > step] Executing" (plain) or "scenario ➜ step: Executing" (colour).
    marker = rf"(?:\[\w+ > {step}\] |{step}: )"
    part = re.split(marker + "Executed", re.split(marker + "Executing", out, maxsplit=1)[1], maxsplit=1)[0]
    return {host: changed for host, _, changed in _recaps(part)}


@pytest.mark.parametrize("scenario", [
    pytest.param(s, marks=pytest.mark.timeout(HUNG_AFTER.get(s, 1200) + 60)) for s in SELF_CONTAINED])
def test_scenario_converges_idempotently_and_verifies_in_debian_containers(molecule_image: str,
                                                                          scenario: str) -> None:
    role, name = scenario.split("/")
    proc = subprocess.run(
        [venv_tool("molecule"), "test", "-s", name],
        cwd=ANSIBLE_DIR / "roles" / role,
        env=molecule_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=HUNG_AFTER.get(scenario, 1200),
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:]
    for step in ("converge", "idempotence", "verify"):
        assert f"{step}: Executed: Successful" in out, step
    hosts = {h for h, _, _ in _recaps(out)}
    converge, idempotence = _molecule_runs(out, "converge"), _molecule_runs(out, "idempotence")
    assert hosts and set(converge) == set(idempotence) == hosts
    for host in hosts:
        assert converge[host] > 0, f"{host}: the first converge changed nothing: the scenario tests nothing"
        assert idempotence[host] == 0, f"{host}: the second converge changed {idempotence[host]} tasks"
    sequence = yaml.safe_load((_scenario_dir(scenario) / "molecule.yml").read_text())["scenario"]["test_sequence"]
    if "check" in sequence:  # check mode on the fresh hosts ran before the converge, and failed nothing
        assert "check: Executed: Successful" in out

S3_PORT = 9000


def _molecule(cwd: Path, step: str, env: dict[str, str]) -> str:
    proc = subprocess.run([venv_tool("molecule"), step], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, f"molecule {step}:\n{out[-4000:]}"
    return out


@pytest.fixture
def backup_scenario(molecule_image: str, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The backup role's container, created, with moto's S3 server listening on 127.0.0.1 *inside* it.

    The container has no network; the server runs on this machine in the container's network namespace
    (nsenter), so it is reachable at 127.0.0.1:9000 from the role and from nowhere else. It is stopped by
    the PID started here, then the container is destroyed.
    """
    for tool in ("restic", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install restic util-linux (make system-deps)")
    moto = VENV_BIN / "moto_server"
    if not moto.exists():
        pytest.fail(f"{moto} is missing: pip install 'moto[s3]' flask flask-cors (make .venv/.installed)")
    cwd = ANSIBLE_DIR / "roles" / "backup"
    env = molecule_env() | {"K3SMIG_RESTIC_BINARY": str(shutil.which("restic"))}
    _molecule(cwd, "destroy", env)
    _molecule(cwd, "create", env)
    server: subprocess.Popen[bytes] | None = None
    try:
        pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", "k3smig-molecule-backup"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        log = (tmp_path / "moto.log").open("wb")
        server = subprocess.Popen(
            ["nsenter", f"--net=/proc/{pid}/ns/net", str(moto), "-H", "127.0.0.1", "-p", str(S3_PORT)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        _wait_for_s3(pid, server, tmp_path / "moto.log")
        yield cwd, env
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        _molecule(cwd, "destroy", env)


def _wait_for_s3(pid: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Readiness, not timing: poll the port from inside the namespace until the server accepts connections."""
    probe = ("import socket,sys; s=socket.socket(); s.settimeout(1); "
             f"sys.exit(s.connect_ex(('127.0.0.1', {S3_PORT})))")
    for _ in range(300):
        if server.poll() is not None:
            pytest.fail(f"the S3 server exited:\n{log.read_text()[-2000:]}")
        inside = ["nsenter", f"--net=/proc/{pid}/ns/net", "python3", "-c", probe]
        if subprocess.run(inside, check=False).returncode == 0:
            return
        time.sleep(0.2)
    pytest.fail(f"the S3 server never listened on 127.0.0.1:{S3_PORT}:\n{log.read_text()[-2000:]}")


@pytest.mark.timeout(1800)  # four Molecule steps and a restore; a loaded machine took 15 minutes
def test_backup_role_backs_up_to_a_real_s3_server_and_the_restore_passes_integrity_check(
    backup_scenario: tuple[Path, dict[str, str]],
) -> None:
    """First backup at converge, nothing on the second converge, then verify.yml: objects in the bucket,
    two timer runs with retention 2, a restore whose SQLite copy passes PRAGMA integrity_check and holds the
    last revisions and the token, and volumes restored byte for byte."""
    cwd, env = backup_scenario
    converge = _molecule_runs(_molecule(cwd, "converge", env), "converge")
    assert converge["k3smig-molecule-backup"] > 0
    idempotence = _molecule_runs(_molecule(cwd, "idempotence", env), "idempotence")
    assert idempotence == {"k3smig-molecule-backup": 0}
    verify = _molecule(cwd, "verify", env)
    assert "verify: Executed: Successful" in verify
