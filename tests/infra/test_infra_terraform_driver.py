"""The python-terraform driver, for real: init / plan / apply / output / destroy on a local-only module."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from infra_helpers import VENV_BIN, Tofu, tool_env

from k3smig_lib.errors import FatalError, ToolMissingError
from k3smig_lib.infra import terraform
from k3smig_lib.infra.render import PLAN_FILE, TFVARS_FILE, VmSettings, render_inventory

pytestmark = pytest.mark.infra


@pytest.fixture
def local_module(terraform_copy: Path, tofu_on_path: Tofu) -> Path:
    workdir = terraform_copy / "examples" / "local-only"
    terraform.init(workdir)
    return workdir


def test_first_plan_creates_both_resources_and_exits_2(local_module: Path) -> None:
    summary = terraform.plan(local_module, {"name": "vm-a"})
    assert (summary.exit_code, summary.changed) == (2, True)
    assert summary.rows == [
        {"address": "terraform_data.ip", "type": "terraform_data", "action": "create"},
        {"address": "terraform_data.server", "type": "terraform_data", "action": "create"},
    ]
    assert (summary.adds, summary.changes, summary.destroys) == (2, 0, 0)
    assert (local_module / PLAN_FILE).is_file()
    assert (local_module / TFVARS_FILE).stat().st_mode & 0o777 == 0o600


def test_apply_applies_the_saved_plan_and_returns_the_outputs(local_module: Path) -> None:
    terraform.plan(local_module, {"name": "vm-a", "ssh_private_key_path": "/home/op/.ssh/k3smig_ed25519"})
    outputs = terraform.apply(local_module)
    assert outputs["public_ip"] == "127.0.0.1"
    assert outputs["ssh_user"] == "root"
    assert outputs["private_key_path"] == "/home/op/.ssh/k3smig_ed25519"
    assert outputs["instance_id"].startswith("fr-par-1/")
    assert not (local_module / PLAN_FILE).exists()
    assert terraform.outputs(local_module) == outputs


def test_second_plan_after_apply_reports_no_changes_with_exit_code_0(local_module: Path) -> None:
    terraform.plan(local_module, {"name": "vm-a"})
    terraform.apply(local_module)
    again = terraform.plan(local_module, {"name": "vm-a"})
    assert (again.exit_code, again.changed, again.rows) == (0, False, [])


def test_changing_the_instance_type_plans_one_replacement(local_module: Path) -> None:
    terraform.plan(local_module, {"instance_type": "GP1-XS"})
    terraform.apply(local_module)
    summary = terraform.plan(local_module, {"instance_type": "DEV1-L"})
    assert summary.rows == [{"address": "terraform_data.server", "type": "terraform_data", "action": "replace"}]
    assert (summary.adds, summary.changes, summary.destroys) == (1, 0, 1)


def test_destroy_removes_everything_and_leaves_no_outputs(local_module: Path) -> None:
    terraform.plan(local_module, {})
    terraform.apply(local_module)
    terraform.destroy(local_module, {})
    assert terraform.outputs(local_module) == {}
    state = json.loads((local_module / "terraform.tfstate").read_text())
    assert state["resources"] == []


def test_apply_without_a_saved_plan_is_refused(local_module: Path) -> None:
    with pytest.raises(FatalError, match="no saved plan in .*run plan first"):
        terraform.apply(local_module)


def test_a_failed_validation_raises_with_the_variable_name(local_module: Path) -> None:
    with pytest.raises(FatalError, match=r"plan failed in .*var\.public_ip must be an IPv4 address"):
        terraform.plan(local_module, {"public_ip": "not-an-address"})


def test_plan_errors_never_carry_a_credential_value(local_module: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    planted = "planted-scw-secret-0f9e8d7c"
    monkeypatch.setenv("SCW_SECRET_KEY", planted)
    with pytest.raises(FatalError) as caught:
        # OpenTofu prints the offending value next to a failed validation.
        terraform.plan(local_module, {"public_ip": planted})
    assert "var.public_ip" in str(caught.value)
    assert planted not in str(caught.value)


def test_inventory_rendered_from_the_outputs_is_what_ansible_reads(local_module: Path, tmp_path: Path) -> None:
    settings = VmSettings(name="k3smig-test")
    terraform.plan(local_module, {"name": settings.name, "ssh_private_key_path": "/home/op/.ssh/k3smig_ed25519"})
    outputs = terraform.apply(local_module)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(render_inventory(outputs, settings))
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        env=tool_env(),
        check=True,
    )
    listed = json.loads(proc.stdout)
    assert listed["k3s_servers"]["hosts"] == ["k3smig-test"]
    host = listed["_meta"]["hostvars"]["k3smig-test"]
    assert host["ansible_host"] == host["k3s_node_external_ip"] == "127.0.0.1"
    assert host["ansible_user"] == "root"
    assert host["ansible_ssh_private_key_file"] == "/home/op/.ssh/k3smig_ed25519"
    assert host["k3smig_instance_id"] == outputs["instance_id"]


def test_explicit_binary_is_used_even_when_nothing_is_on_path(
    tofu: Tofu, terraform_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    workdir = terraform_copy / "examples" / "local-only"
    terraform.init(workdir, binary=tofu.binary)
    assert terraform.plan(workdir, {}, binary=tofu.binary).adds == 2


def test_find_binary_prefers_tofu_and_says_how_to_build_it_when_missing(
    tofu: Tofu, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = tmp_path / "both"
    both.mkdir()
    for name in ("terraform", "tofu"):
        (both / name).symlink_to(tofu.binary)
    monkeypatch.setenv("PATH", str(both))
    assert os.path.basename(terraform.find_binary()) == "tofu"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError, match="neither tofu nor terraform.*tools/build-infra.sh"):
        terraform.find_binary()


def test_a_folder_without_terraform_files_is_refused(tmp_path: Path, tofu: Tofu) -> None:
    with pytest.raises(FatalError, match="is not a Terraform root module"):
        terraform.init(tmp_path, binary=tofu.binary)
