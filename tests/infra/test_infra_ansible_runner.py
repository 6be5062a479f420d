"""The ansible-runner driver, for real: playbooks against localhost, events, recap, failures, scrubbing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from infra_helpers import ANSIBLE_DIR, VENV_BIN

from k3smig_lib.errors import ParameterError
from k3smig_lib.infra.ansible import RunnerResult, run_playbook

pytestmark = pytest.mark.infra

PLAYBOOKS = Path(__file__).parent / "playbooks"
PLANTED = "planted-scw-secret-7a6b5c4d3e"


@pytest.fixture(autouse=True)
def _planted_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential in the environment, as .envrc puts it there, and the venv's tools first on PATH."""
    monkeypatch.setenv("SCW_SECRET_KEY", PLANTED)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:/usr/bin:/bin")


def _inventory() -> str:
    return f"[local]\nlocalhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n"


def _probe(tmp_path: Path, *, check: bool, pdd: Path | None = None) -> RunnerResult:
    return run_playbook(
        PLAYBOOKS / "probe.yml",
        _inventory(),
        check=check,
        extravars={"probe_dir": str(tmp_path)},
        private_data_dir=pdd,
    )


def test_recap_and_task_table_come_from_the_runner_events(tmp_path: Path) -> None:
    result = _probe(tmp_path, check=False)
    assert (result.status, result.rc) == ("successful", 0)
    assert result.recap == [{"host": "localhost", "ok": 5, "changed": 1, "unreachable": 0, "failed": 0, "skipped": 1}]
    by_task = {t["task"]: t for t in result.tasks}
    assert by_task["Read the hostname without changing anything"]["status"] == "ok"
    assert by_task["Write the marker file"]["status"] == "changed"
    assert by_task["Skip a task that does not apply"]["status"] == "skipped"
    assert by_task["Fail without stopping the play"]["status"] == "ignored"
    assert "non-zero return code" in by_task["Fail without stopping the play"]["msg"]
    assert result.failures == []
    assert (tmp_path / "marker.txt").read_text() == "k3smig runner probe\n"


def test_second_run_reports_zero_changes(tmp_path: Path) -> None:
    _probe(tmp_path, check=False)
    again = _probe(tmp_path, check=False)
    assert again.changed == 0
    assert {t["status"] for t in again.tasks} == {"ok", "skipped", "ignored"}


def test_check_mode_reports_the_change_without_making_it(tmp_path: Path) -> None:
    result = _probe(tmp_path, check=True)
    assert result.status == "successful"
    assert next(t for t in result.tasks if t["task"] == "Write the marker file")["status"] == "changed"
    assert not (tmp_path / "marker.txt").exists()


def test_a_failed_task_is_reported_with_its_task_and_message(tmp_path: Path) -> None:
    result = run_playbook(PLAYBOOKS / "fail.yml", _inventory(), check=False, extravars={"probe_disk_gb": 20})
    assert (result.status, result.rc) == ("failed", 2)
    assert result.recap[0]["failed"] == 1
    (failure,) = result.failures
    assert failure["task"] == "Check the disk is large enough"
    assert failure["host"] == "localhost"
    assert failure["msg"].startswith("disk_gb is 20, below the 40 GB K3s needs")
    assert "Never reached after the failure" not in {t["task"] for t in result.tasks}


def test_a_planted_credential_never_leaves_the_runner(tmp_path: Path) -> None:
    pdd = tmp_path / "runner"
    probe = _probe(tmp_path, check=False, pdd=pdd)
    failed = run_playbook(
        PLAYBOOKS / "fail.yml", _inventory(), check=False, extravars={"probe_disk_gb": 1}, private_data_dir=pdd
    )
    assert PLANTED not in repr(probe) + repr(failed)
    assert "(credential ********)" in failed.failures[0]["msg"]
    no_log = next(t for t in probe.tasks if t["task"] == "Use the credential with no_log")
    assert no_log["status"] == "ok"
    leaks = [p for p in pdd.rglob("*") if p.is_file() and PLANTED in p.read_text(errors="replace")]
    assert leaks == []
    # ansible-runner wrote the environment (with the credential) into artifacts/<id>/command: scrubbed.
    assert any((p / "command").is_file() for p in (pdd / "artifacts").iterdir())


def test_inventory_can_be_a_file_path(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(_inventory())
    result = run_playbook(PLAYBOOKS / "probe.yml", inventory, check=True, extravars={"probe_dir": str(tmp_path)})
    assert [r["host"] for r in result.recap] == ["localhost"]


def test_a_missing_playbook_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="playbook .*nope.yml does not exist"):
        run_playbook(tmp_path / "nope.yml", _inventory(), check=True)


def test_site_playbook_stops_in_its_pre_checks_on_a_bad_input(tmp_path: Path) -> None:
    """The real site.yml, through the driver: the k3s role refuses a malformed version before acting."""
    result = run_playbook(
        ANSIBLE_DIR / "site.yml",
        f"[k3s_servers]\nlocalhost ansible_connection=local ansible_python_interpreter={VENV_BIN / 'python'}\n",
        check=True,
        extravars={
            "k3s_version": "1.33",
            "k3s_node_external_ip": "127.0.0.1",
            "ansible_become": False,
        },
    )
    assert result.status == "failed"
    (failure,) = result.failures
    assert (failure["role"], failure["task"]) == ("k3s", "Check the K3s role inputs")
    assert "k3s_version a release tag such as v1.33.4+k3s1" in failure["msg"]


def test_k3s_role_rewrites_the_admin_kubeconfig_to_the_k3smig_target_context(tmp_path: Path) -> None:
    fixture = Path(__file__).parent / "fixtures" / "k3s.yaml"
    admin = yaml.safe_load(fixture.read_text())
    pdd = tmp_path / "runner"
    result = run_playbook(
        PLAYBOOKS / "kubeconfig.yml",
        _inventory(),
        check=False,
        extravars={"probe_config_dir": str(fixture.parent), "probe_dir": str(tmp_path)},
        private_data_dir=pdd,
    )
    assert result.status == "successful", result.failures
    written = tmp_path / "kube" / "k3smig-target.yaml"
    assert written.stat().st_mode & 0o777 == 0o600
    assert (written.parent.stat().st_mode & 0o777) == 0o700
    config = yaml.safe_load(written.read_text())
    assert config["current-context"] == "k3smig-target"
    assert config["contexts"] == [
        {"name": "k3smig-target", "context": {"cluster": "k3smig-target", "user": "k3smig-target"}}
    ]
    (cluster,) = config["clusters"]
    assert cluster["cluster"]["server"] == "https://203.0.113.10:6443"
    assert (
        cluster["cluster"]["certificate-authority-data"]
        == admin["clusters"][0]["cluster"]["certificate-authority-data"]
    )
    assert config["users"][0]["user"] == admin["users"][0]["user"]
    # no_log keeps the client key out of every runner artifact.
    key = admin["users"][0]["user"]["client-key-data"]
    assert [p for p in pdd.rglob("*") if p.is_file() and key in p.read_text(errors="replace")] == []
