"""Pure renderers (tfvars, inventory, extra vars, planned commands) and the operator's SSH key."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from infra_helpers import ANSIBLE_DIR, TERRAFORM_DIR

from k3smig_lib.errors import ParameterError, TargetError
from k3smig_lib.infra.render import (
    INSTANCE_SIZES,
    VmSettings,
    placeholder_outputs,
    planned_commands,
    render_extravars,
    render_inventory,
    render_tfvars,
)
from k3smig_lib.infra.ssh_key import ensure_ssh_key

pytestmark = pytest.mark.infra

OUTPUTS = {
    "public_ip": "203.0.113.10",
    "ssh_user": "root",
    "private_key_path": "/home/op/.ssh/k3smig_ed25519",
    "instance_id": "fr-par-1/6b1c7c59-1f4e-4a5c-9b65-2f3f7a0c9d11",
}


def test_tfvars_are_exactly_the_variables_the_env_root_module_declares() -> None:
    declared = set(re.findall(r'^variable "(\w+)"', (TERRAFORM_DIR / "envs/scaleway/variables.tf").read_text(), re.M))
    tfvars = render_tfvars(VmSettings(), ssh_public_key="ssh-ed25519 AAAA op")
    assert set(tfvars) <= declared
    # left to their defaults
    assert declared - set(tfvars) == {"project_id", "root_volume_type", "tags", "private_network_cidr", "lb_type"}
    assert (tfvars["server_count"], tfvars["agent_count"], tfvars["lb_enabled"]) == (1, 0, False)


def test_server_and_agent_counts_outside_what_the_module_accepts_are_refused() -> None:
    with pytest.raises(ParameterError, match="server_count is 2.*odd quorum"):
        render_tfvars(VmSettings(server_count=2))


def test_tfvars_carry_the_seed_defaults_and_an_expanded_key_path() -> None:
    tfvars = render_tfvars(VmSettings(), ssh_public_key="ssh-ed25519 AAAA op")
    assert tfvars["instance_type"] == "GP1-XS"
    assert tfvars["disk_gb"] == 80
    assert tfvars["image"] == "ubuntu_jammy"
    assert tfvars["ssh_public_key"] == "ssh-ed25519 AAAA op"
    assert tfvars["ssh_private_key_path"] == str(Path("~/.ssh/k3smig_ed25519").expanduser())


def test_unknown_letsencrypt_environment_is_refused_with_the_fix() -> None:
    with pytest.raises(ParameterError, match="letsencrypt_env is 'prod'.*staging \\(default\\) or production"):
        render_tfvars(VmSettings(letsencrypt_env="prod"))


def test_inventory_puts_the_vm_in_k3s_servers_with_its_connection_details() -> None:
    inventory = yaml.safe_load(render_inventory(OUTPUTS, VmSettings(name="k3smig")))
    host = inventory["all"]["children"]["k3s_servers"]["hosts"]["k3smig"]
    assert host["ansible_host"] == host["k3s_node_external_ip"] == "203.0.113.10"
    assert host["ansible_user"] == "root"
    assert host["ansible_ssh_private_key_file"] == "/home/op/.ssh/k3smig_ed25519"
    assert host["k3smig_instance_id"] == OUTPUTS["instance_id"]


def test_inventory_accepts_output_json_entries() -> None:
    wrapped = {k: {"value": v, "sensitive": False, "type": "string"} for k, v in OUTPUTS.items()}
    assert render_inventory(wrapped, VmSettings()) == render_inventory(OUTPUTS, VmSettings())


def test_inventory_without_a_public_ip_says_to_apply_first() -> None:
    with pytest.raises(TargetError, match="Terraform outputs lack public_ip.*apply: true"):
        render_inventory({"ssh_user": "root", "private_key_path": "/k"}, VmSettings())


def test_inventory_matches_the_one_the_terraform_module_renders() -> None:
    """Both renderers name the same group and host variables, so either can feed Ansible."""
    module_outputs = (TERRAFORM_DIR / "modules/vm/outputs.tf").read_text()
    host = yaml.safe_load(render_inventory(OUTPUTS, VmSettings()))["all"]["children"]["k3s_servers"]["hosts"]
    for key in ("k3s_servers", "ansible_host", "ansible_user", "ansible_ssh_private_key_file", "k3s_node_external_ip"):
        assert key in module_outputs
        assert key == "k3s_servers" or key in host["k3smig"]


def test_a_single_vm_inventory_is_unchanged_by_the_nodes_output() -> None:
    """The real module also outputs nodes; for one VM its private address is null and nothing changes."""
    single = OUTPUTS | {"nodes": {"k3smig": {"role": "server", "public_ip": "203.0.113.10", "private_ip": None}}}
    assert render_inventory(single, VmSettings()) == render_inventory(OUTPUTS, VmSettings())
    assert render_inventory(placeholder_outputs(VmSettings()), VmSettings()).count("ansible_host") == 1


def test_cluster_inventory_has_three_servers_and_the_agents_with_their_private_addresses() -> None:
    s = VmSettings(server_count=3, agent_count=2)
    inventory = yaml.safe_load(render_inventory(placeholder_outputs(s), s))["all"]["children"]
    assert list(inventory["k3s_servers"]["hosts"]) == ["k3smig", "k3smig-server-2", "k3smig-server-3"]
    assert list(inventory["k3s_agents"]["hosts"]) == ["k3smig-agent-1", "k3smig-agent-2"]
    assert inventory["k3s_servers"]["hosts"]["k3smig"]["k3s_node_ip"] == "10.100.0.10"
    agent = inventory["k3s_agents"]["hosts"]["k3smig-agent-2"]
    assert agent["k3s_node_ip"] == "10.100.0.14" and agent["ansible_host"] == agent["k3s_node_external_ip"]
    assert planned_commands(s, env_dir=Path("e"), apply=False)[-1].split("--limit ")[1].startswith(
        "k3smig,k3smig-server-2,k3smig-server-3,k3smig-agent-1,k3smig-agent-2")


def test_extravars_are_declared_by_the_roles_argument_specs() -> None:
    declared: set[str] = set()
    for spec in ANSIBLE_DIR.glob("roles/*/meta/argument_specs.yml"):
        declared |= set(yaml.safe_load(spec.read_text())["argument_specs"]["main"]["options"])
    extravars = render_extravars(VmSettings(letsencrypt_env="production"))
    assert set(extravars) <= declared
    assert extravars["cert_manager_default_issuer"] == "letsencrypt-production"
    assert extravars["external_dns_txt_owner_id"] == "k3smig"
    assert extravars["system_upgrade_version"] == VmSettings().k3s_version
    assert extravars["backup_s3_endpoint"] == "https://s3.fr-par.scw.cloud"
    assert extravars["backup_s3_region"] == "fr-par"
    assert extravars["longhorn_enabled"] is False
    assert render_extravars(VmSettings(storage_class="longhorn"))["longhorn_enabled"] is True
    assert not any(k.endswith(("_key", "_password", "_token")) for k in extravars)  # credentials come from the env


def test_dry_run_commands_plan_and_check_but_never_apply() -> None:
    cmds = planned_commands(VmSettings(), env_dir=Path("infrastructure/terraform/envs/scaleway"), apply=False)
    assert cmds[0] == "tofu -chdir=infrastructure/terraform/envs/scaleway init -input=false"
    assert "-detailed-exitcode" in cmds[1] and "-out=.k3smig.tfplan" in cmds[1]
    assert not any(" apply " in c for c in cmds)
    assert cmds[-1].startswith("ansible-playbook -i inventory.yml ansible/site.yml")
    assert cmds[-1].endswith("--check")


def test_apply_commands_apply_the_saved_plan_and_run_ansible_for_real() -> None:
    cmds = planned_commands(VmSettings(), env_dir=Path("envs/x"), apply=True, binary="terraform")
    assert cmds[2] == "terraform -chdir=envs/x apply -input=false .k3smig.tfplan"
    assert "--check" not in cmds[-1]


def test_documented_sizes_include_the_default_and_the_seeds_8_gb_type() -> None:
    by_type = {s["type"]: s for s in INSTANCE_SIZES}
    assert by_type[VmSettings().instance_type]["vcpu"] == 4
    assert any(s["vcpu"] == 4 and s["ram_gib"] == 8 for s in INSTANCE_SIZES)
    assert all(set(s) == {"type", "vcpu", "ram_gib", "notes"} for s in INSTANCE_SIZES)


def test_ssh_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "k3smig_ed25519"
    public = ensure_ssh_key(key)
    assert public.startswith("ssh-ed25519 ") and public.endswith(" k3smig")
    assert key.stat().st_mode & 0o777 == 0o600
    assert ensure_ssh_key(key).split()[:2] == public.split()[:2]
    # OpenSSH itself (openssh-client, which Ansible needs anyway) must read the key back.
    check = subprocess.run(["ssh-keygen", "-y", "-f", str(key)], capture_output=True, text=True, check=True)
    assert check.stdout.split()[:2] == public.split()[:2]


def test_ssh_key_readable_by_others_is_refused_with_chmod_fix(tmp_path: Path) -> None:
    key = tmp_path / "k3smig_ed25519"
    ensure_ssh_key(key)
    key.chmod(0o644)
    with pytest.raises(ParameterError, match="mode 0644, readable by others.*chmod 600"):
        ensure_ssh_key(key)


def test_ssh_key_inside_a_git_work_tree_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    with pytest.raises(ParameterError, match="inside the git work tree"):
        ensure_ssh_key(tmp_path / "secrets" / "id")
    assert not (tmp_path / "secrets" / "id").exists()
