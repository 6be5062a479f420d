"""Pure renderers between the notebook parameters and the infrastructure tools.

Phases 10 and 20 turn one :class:`VmSettings` into Terraform variables, the Terraform outputs into an
Ansible inventory, and both into the exact command lines they run. Nothing here touches a file, a
process or the network, so the demo's dry run shows the same plan inputs a real run would use, with
no tool installed.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.errors import ParameterError, TargetError

#: Files the Terraform driver writes in the root module folder (git-ignored).
TFVARS_FILE = ".k3smig.tfvars.json"
PLAN_FILE = ".k3smig.tfplan"
#: Inventory groups the playbook targets: the servers (the first one is the single VM), and the agents.
INVENTORY_GROUP = "k3s_servers"
AGENT_GROUP = "k3s_agents"
_REQUIRED_OUTPUTS = ("public_ip", "ssh_user", "private_key_path")

#: Instance sizes worth considering for one K3s VM (Scaleway public catalogue; prices and stock vary,
#: check ``scw instance server-type list`` before choosing). The seed asks for 4 vCPU / 8 GB and
#: names GP1-XS, which has 16 GiB: DEV1-L is the type that matches 8 GB.
INSTANCE_SIZES: list[dict[str, Any]] = [
    {"type": "DEV1-M", "vcpu": 3, "ram_gib": 4, "notes": "too small for Prometheus + Loki; tests only"},
    {"type": "DEV1-L", "vcpu": 4, "ram_gib": 8, "notes": "matches the seed's 4 vCPU / 8 GB; shared vCPU"},
    {"type": "GP1-XS", "vcpu": 4, "ram_gib": 16, "notes": "default (named by the seed); dedicated vCPU"},
    {"type": "PRO2-XS", "vcpu": 4, "ram_gib": 16, "notes": "newer generation, block storage only"},
    {"type": "GP1-S", "vcpu": 8, "ram_gib": 32, "notes": "headroom for GitLab Runner jobs"},
]


@dataclass(frozen=True)
class VmSettings:
    """What phases 10 and 20 need to know about the target VM; no credential ever goes here.

    Attributes:
        name: VM name, resource prefix and Ansible host name.
        zone: Scaleway availability zone.
        instance_type: commercial type (see :data:`INSTANCE_SIZES`).
        image: marketplace image label; the roles target Ubuntu 22.04.
        disk_gb: root volume size in GB.
        admin_cidr: the only source allowed on SSH and the Kubernetes API.
        ssh_user: user Ansible connects as.
        k3s_version: pinned K3s release tag.
        domain: DNS zone external-dns manages.
        acme_email: Let's Encrypt account address.
        letsencrypt_env: ``staging`` or ``production`` default ClusterIssuer.
        txt_owner_id: external-dns TXT owner id of the new cluster.
        ingress_controller: ``traefik`` (K3s's bundled Traefik, NGINX provider on) or ``ingress-nginx``.
        airgap: install K3s from local files instead of downloading.
        ssh_key_path: private key on the operator's machine (generated, mode 0600, outside git).
        server_count: K3s servers, 1 (SQLite) or 3 (embedded etcd).
        agent_count: K3s agents joined to the servers.
        lb_enabled: a Scaleway load balancer in front of the ingress.
        storage_class: the StorageClass claims are remapped to; ``longhorn`` also installs Longhorn.
        backup_bucket: Object Storage bucket of the backups (globally unique name; required by phase 20).
        backup_retention: snapshots kept per node and kind.
    """

    name: str = "k3smig"
    zone: str = "fr-par-1"
    instance_type: str = "GP1-XS"
    image: str = "ubuntu_jammy"
    disk_gb: int = 80
    admin_cidr: str = "203.0.113.0/24"
    ssh_user: str = "root"
    k3s_version: str = "v1.33.4+k3s1"
    domain: str = "example.org"
    acme_email: str = "ops@example.org"
    letsencrypt_env: str = "staging"
    txt_owner_id: str = "k3smig"
    ingress_controller: str = "traefik"
    airgap: bool = False
    ssh_key_path: str = "~/.ssh/k3smig_ed25519"
    server_count: int = 1
    agent_count: int = 0
    lb_enabled: bool = False
    storage_class: str = "local-path"
    backup_bucket: str = ""
    backup_retention: int = 14

    @property
    def region(self) -> str:
        """Scaleway region of the zone (``fr-par`` for ``fr-par-1``)."""
        return self.zone.rsplit("-", 1)[0]

    @property
    def node_names(self) -> list[str]:
        """Node names in the Terraform module's order: the first server, the other servers, the agents."""
        return ([self.name] + [f"{self.name}-server-{i + 2}" for i in range(self.server_count - 1)]
                + [f"{self.name}-agent-{i + 1}" for i in range(self.agent_count)])


def render_tfvars(s: VmSettings, *, ssh_public_key: str = "") -> dict[str, Any]:
    """Map the settings to the variables of ``infrastructure/terraform/envs/scaleway``.

    Args:
        s: the VM settings.
        ssh_public_key: the OpenSSH public key from ``ssh_key.ensure_ssh_key``; empty in a dry run
            without tools (the module's validation then refuses a real plan, by design).

    Returns:
        A JSON-serialisable dict, written as the ``-var-file`` of plan and destroy.

    Raises:
        ParameterError: ``letsencrypt_env`` is neither staging nor production.

    Examples:
        >>> render_tfvars(VmSettings(instance_type="DEV1-L"))["instance_type"]
        'DEV1-L'
    """
    if s.letsencrypt_env not in ("staging", "production"):
        raise ParameterError(
            f"letsencrypt_env is {s.letsencrypt_env!r}",
            fix="set letsencrypt_env to staging (default) or production",
        )
    if s.server_count not in (1, 3) or not 0 <= s.agent_count <= 10:
        raise ParameterError(
            f"server_count is {s.server_count} and agent_count {s.agent_count}",
            fix="set server_count to 1 or 3 (embedded etcd needs an odd quorum) and agent_count to 0-10",
        )
    return {
        "name": s.name,
        "zone": s.zone,
        "instance_type": s.instance_type,
        "image": s.image,
        "disk_gb": s.disk_gb,
        "admin_cidr": s.admin_cidr,
        "ssh_user": s.ssh_user,
        "ssh_public_key": ssh_public_key,
        "ssh_private_key_path": os.path.expanduser(s.ssh_key_path),
        "server_count": s.server_count,
        "agent_count": s.agent_count,
        "lb_enabled": s.lb_enabled,
    }


def _output_value(outputs: Mapping[str, Any], key: str) -> Any:
    """Accept both plain values and ``terraform output -json`` entries (``{"value": …}``)."""
    value = outputs.get(key)
    if isinstance(value, Mapping) and "value" in value:
        return value["value"]
    return value


def placeholder_outputs(s: VmSettings) -> dict[str, Any]:
    """Outputs that stand in for an apply that has not happened (documentation addresses, private ones).

    One VM gives exactly the single-host placeholders phase 10 always showed; more nodes add ``nodes``.
    """
    outputs: dict[str, Any] = {"public_ip": "203.0.113.10", "ssh_user": "root",
                               "private_key_path": "~/.ssh/k3smig (written by tofu apply)",
                               "instance_id": "(after apply)"}
    names = s.node_names
    if len(names) > 1 or s.lb_enabled:
        outputs["nodes"] = {
            name: {"role": "agent" if "-agent-" in name else "server", "public_ip": f"203.0.113.{10 + i}",
                   "private_ip": f"10.100.0.{10 + i}"}
            for i, name in enumerate(names)
        }
    return outputs


def render_inventory(outputs: Mapping[str, Any], s: VmSettings) -> str:
    """Render the YAML inventory Ansible reads, from the Terraform outputs.

    The first server is host ``s.name`` of group ``k3s_servers``; with the ``nodes`` output of a cluster,
    the other servers join that group and the agents group ``k3s_agents``, each with its private address
    as ``k3s_node_ip``. The host key is accepted on first contact (``accept-new``): the VMs are brand new,
    and a changed key later still stops the run.

    Args:
        outputs: Terraform output values (``public_ip``, ``ssh_user``, ``private_key_path``,
            ``instance_id`` and ``nodes``), plain or as ``output -json`` entries.
        s: the VM settings (host name).

    Returns:
        The inventory as YAML text.

    Raises:
        TargetError: an output is missing (the apply did not finish, or another module was used).

    Examples:
        >>> out = {"public_ip": "203.0.113.7", "ssh_user": "root", "private_key_path": "/k"}
        >>> "203.0.113.7" in render_inventory(out, VmSettings())
        True
    """
    missing = [k for k in _REQUIRED_OUTPUTS if not _output_value(outputs, k)]
    if missing:
        raise TargetError(
            f"Terraform outputs lack {', '.join(missing)}",
            fix="run phase 10 with apply: true first, or check the root module declares these outputs",
        )
    user = str(_output_value(outputs, "ssh_user"))
    key = str(_output_value(outputs, "private_key_path"))

    def host(public_ip: str, private_ip: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "ansible_host": public_ip,
            "ansible_user": user,
            "ansible_ssh_private_key_file": key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new",
            "k3s_node_external_ip": public_ip,
        }
        if private_ip:
            entry["k3s_node_ip"] = private_ip
        return entry

    nodes = _output_value(outputs, "nodes") or {}
    first = nodes.get(s.name) or {}
    servers = {s.name: host(str(_output_value(outputs, "public_ip")), first.get("private_ip"))}
    instance_id = _output_value(outputs, "instance_id")
    if instance_id:
        servers[s.name]["k3smig_instance_id"] = str(instance_id)
    agents: dict[str, Any] = {}
    for name, node in sorted(nodes.items()):
        if name != s.name:
            group = agents if node.get("role") == "agent" else servers
            group[name] = host(str(node["public_ip"]), node.get("private_ip"))
    children: dict[str, Any] = {INVENTORY_GROUP: {"hosts": servers}}
    if agents:
        children[AGENT_GROUP] = {"hosts": agents}
    return yaml.safe_dump({"all": {"children": children}}, sort_keys=False)


def render_extravars(s: VmSettings) -> dict[str, Any]:
    """Map the settings to the role variables of ``ansible/site.yml``.

    Args:
        s: the VM settings.

    Returns:
        Extra variables for ansible-playbook; credentials (S3 keys, the restic password, the K3s
        token) are read by the roles from the environment, never passed here.

    Examples:
        >>> render_extravars(VmSettings(letsencrypt_env="production"))["cert_manager_default_issuer"]
        'letsencrypt-production'
    """
    return {
        "k3s_version": s.k3s_version,
        "k3s_airgap": s.airgap,
        "cert_manager_acme_email": s.acme_email,
        "cert_manager_default_issuer": f"letsencrypt-{s.letsencrypt_env}",
        "external_dns_domain": s.domain,
        "external_dns_txt_owner_id": s.txt_owner_id,
        # traefik: K3s deploys its bundled Traefik with the NGINX provider, no ingress-nginx release;
        # ingress-nginx: Traefik disabled, the ingress_nginx role installs the (unmaintained) controller
        "k3s_disable": [] if s.ingress_controller == "traefik" else ["traefik"],
        "k3s_traefik_nginx_provider": s.ingress_controller == "traefik",
        "ingress_nginx_state": "absent" if s.ingress_controller == "traefik" else "present",
        "system_upgrade_version": s.k3s_version,
        "longhorn_enabled": s.storage_class == "longhorn",
        "backup_s3_bucket": s.backup_bucket,
        "backup_s3_endpoint": f"https://s3.{s.region}.scw.cloud",
        "backup_s3_region": s.region,
        "backup_retention": s.backup_retention,
    }


def planned_commands(
    s: VmSettings,
    *,
    env_dir: Path,
    apply: bool,
    playbook: Path = Path("ansible/site.yml"),
    inventory: Path = Path("inventory.yml"),
    extravars: Path = Path("extravars.json"),
    binary: str = "tofu",
) -> list[str]:
    """Return exactly what phases 10 and 20 run, as shell-quoted command lines.

    Args:
        s: the VM settings (only to state them in the Ansible line's limit).
        env_dir: the Terraform root module.
        apply: False for plan / check mode only, as in the dry run.
        playbook: the playbook phase 20 runs.
        inventory: where the rendered inventory is written.
        extravars: where the rendered extra variables are written.
        binary: ``tofu`` or ``terraform``.

    Returns:
        Command lines, in order.

    Examples:
        >>> cmds = planned_commands(VmSettings(), env_dir=Path("envs/scaleway"), apply=False)
        >>> [c.split()[2] for c in cmds[:2]], cmds[-1].endswith("--check")
        (['init', 'plan'], True)
    """
    chdir = f"-chdir={env_dir}"
    commands = [
        [binary, chdir, "init", "-input=false"],
        [
            binary,
            chdir,
            "plan",
            "-input=false",
            "-detailed-exitcode",
            f"-var-file={TFVARS_FILE}",
            f"-out={PLAN_FILE}",
        ],
    ]
    if apply:
        commands.append([binary, chdir, "apply", "-input=false", PLAN_FILE])
    ansible = [
        "ansible-playbook",
        "-i",
        str(inventory),
        str(playbook),
        "--limit",
        ",".join(s.node_names),
        "-e",
        f"@{extravars}",
    ]
    if not apply:
        ansible.append("--check")
    commands.append(ansible)
    return [shlex.join(c) for c in commands]
