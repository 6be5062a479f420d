"""Phases 10 and 20 · the Scaleway VM (OpenTofu/Terraform) and the K3s platform on it (Ansible).

Plan is the default: variables and inventory are rendered from the parameters and the exact commands
are shown; a real ``plan`` runs when a Terraform binary and credentials are present, and ``apply`` /
the Ansible run only with ``provision: true``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from IPython.display import Markdown

from k3smig_lib.core.config import PACKAGE_ROOT, Settings
from k3smig_lib.infra import ansible as ansible_driver
from k3smig_lib.infra import terraform as tf_driver
from k3smig_lib.infra.render import (
    VmSettings,
    placeholder_outputs,
    planned_commands,
    render_extravars,
    render_inventory,
    render_tfvars,
)
from k3smig_lib.infra.ssh_key import ensure_ssh_key
from k3smig_lib.phases._base import PhaseRun, step
from k3smig_lib.phases.catalog import phase_dir
from k3smig_lib.show import code

PROVISION = "10_provision_infrastructure"
CONFIGURE = "20_configure_k3s"
ENV_DIR = PACKAGE_ROOT / "infrastructure" / "terraform" / "envs" / "scaleway"
PLAYBOOK = PACKAGE_ROOT / "ansible" / "site.yml"
SCW_VARS = ("SCW_ACCESS_KEY", "SCW_SECRET_KEY", "SCW_DEFAULT_PROJECT_ID")


def vm_settings(cfg: Settings) -> VmSettings:
    """The VM and platform settings, from the run parameters."""
    return VmSettings(name=cfg.vm_name, zone=cfg.zone, instance_type=cfg.instance_type, disk_gb=cfg.disk_gb,
                      admin_cidr=cfg.admin_cidr, k3s_version=cfg.k3s_version, domain=cfg.domain,
                      acme_email=cfg.acme_email, letsencrypt_env=cfg.letsencrypt_env, txt_owner_id=cfg.txt_owner_id,
                      ingress_controller=cfg.ingress_controller,
                      server_count=cfg.server_count, agent_count=cfg.agent_count, lb_enabled=cfg.lb_enabled,
                      storage_class=cfg.storage_class, backup_bucket=cfg.backup_bucket,
                      backup_retention=cfg.backup_retention)


def _credentials_present() -> bool:
    return all(os.environ.get(v) for v in SCW_VARS)


class Provision(PhaseRun):
    """State of notebook 10."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=PROVISION)
        self.vm = vm_settings(cfg)
        self.outputs: dict[str, Any] = {}

    def variables(self) -> pd.DataFrame:
        """Terraform variables rendered from the parameters (written as ``terraform.tfvars.json``)."""
        tfvars = render_tfvars(self.vm)
        self.save_json("terraform.tfvars.json", tfvars)
        return pd.DataFrame([{"variable": k, "value": v} for k, v in sorted(tfvars.items())])

    def commands(self) -> Markdown:
        """Exactly what this phase runs (or would run) in the env root module."""
        cmds = planned_commands(self.vm, env_dir=ENV_DIR, apply=self.cfg.provision)
        self.save_text("commands.sh", "\n".join(cmds) + "\n")
        return code("\n".join(cmds), "sh")

    @step
    def plan(self) -> pd.DataFrame:
        """A real ``plan`` when a binary and credentials are present; otherwise say why not."""
        binary = shutil.which("tofu") or shutil.which("terraform")
        if not binary or not _credentials_present():
            why = "no tofu/terraform on PATH" if not binary else "Scaleway credentials not set"
            self.summary["plan"] = f"not run ({why})"
            self.not_run = f"no plan: {why}; the commands above are what would run"
            return pd.DataFrame([{"plan": f"not run: {why}; the commands above are what would run"}])
        public_key = ensure_ssh_key(Path(self.vm.ssh_key_path).expanduser())  # private half: 0600, outside git
        tf_driver.init(ENV_DIR, binary=binary)
        summary = tf_driver.plan(ENV_DIR, render_tfvars(self.vm, ssh_public_key=public_key), binary=binary)
        self.summary.update({"adds": summary.adds, "changes": summary.changes, "destroys": summary.destroys})
        return self.save_table("plan_summary", pd.DataFrame(summary.rows))

    @step
    def apply(self) -> pd.DataFrame:
        """``apply`` of the saved plan, only with ``provision: true``; else the outputs of an earlier apply."""
        self.plan()  # the plan first: it may find the phase cannot run; real outputs then say it did
        binary = shutil.which("tofu") or shutil.which("terraform")
        if self.cfg.provision:
            self.outputs = tf_driver.apply(ENV_DIR, binary=binary)
            source = "this run's apply"
        elif binary and (ENV_DIR / "terraform.tfstate").is_file():
            self.outputs = tf_driver.outputs(ENV_DIR, binary=binary)
            source = "an earlier apply (state in the env module)"
        else:
            self.outputs, source = {}, ""
        self.save_json("outputs.json", {"placeholder": not self.outputs, "outputs": self.outputs})
        if not self.outputs:
            return pd.DataFrame([{"apply": "not run: provision is false and no VM exists (placeholder outputs below)"}])
        self.summary.update({"public_ip": self.outputs.get("public_ip", ""), "outputs from": source})
        self.not_run = ""  # the VM exists: this phase has real outputs
        return pd.DataFrame([{"output": k, "value": v} for k, v in self.outputs.items() if k != "private_key"])

    def inventory(self) -> Markdown:
        """The Ansible inventory rendered from the outputs (what phase 20 reads)."""
        self.apply()  # the outputs it is rendered from
        text = render_inventory(self.outputs or placeholder_outputs(self.vm), self.vm)
        self.save_text("inventory.yml", text)
        return code(text, "yaml")


class ConfigureK3s(PhaseRun):
    """State of notebook 20."""

    def __init__(self, cfg: Settings) -> None:
        super().__init__(cfg=cfg, phase=CONFIGURE)
        self.vm = vm_settings(cfg)
        inv, outs = phase_dir(cfg, PROVISION) / "inventory.yml", phase_dir(cfg, PROVISION) / "outputs.json"
        real = outs.is_file() and not json.loads(outs.read_text()).get("placeholder", True)
        self.inventory_path: Path | None = inv if inv.is_file() and real else None

    def inventory(self) -> Markdown:
        """Inventory from phase 10 (rendered with placeholders when phase 10 has not run)."""
        if self.inventory_path:
            text = self.inventory_path.read_text()
        else:
            text = render_inventory(placeholder_outputs(self.vm), self.vm)
        return code(text, "yaml")

    def roles(self) -> pd.DataFrame:
        """Roles of ``site.yml`` in order, with the pinned inputs this run passes."""
        plays = yaml.safe_load(PLAYBOOK.read_text()) if PLAYBOOK.is_file() else []
        rows = []
        for play in plays or []:
            for role in play.get("roles", []):
                name = role if isinstance(role, str) else role.get("role", "")
                rows.append({"play": play.get("name", ""), "role": name})
        return self.save_table("roles", pd.DataFrame(rows))

    def commands(self) -> Markdown:
        """The ansible-playbook command this phase runs (check mode unless ``provision: true``)."""
        cmds = [c for c in planned_commands(self.vm, env_dir=ENV_DIR, apply=self.cfg.provision) if "ansible" in c]
        return code("\n".join(cmds), "sh")

    def run(self) -> pd.DataFrame:
        """Run the playbook through ansible-runner against the VM (check mode unless ``provision: true``)."""
        if self.inventory_path is None:
            self.summary["ansible"] = "not run (no VM: phase 10 has no real outputs)"
            self.not_run = "no VM: phase 10 has no real outputs, so there is no host to configure"
            return pd.DataFrame([{"ansible": "not run: no VM exists yet (phase 10 rendered placeholder outputs)"}])
        result = ansible_driver.run_playbook(PLAYBOOK, self.inventory_path, check=not self.cfg.provision,
                                             extravars=render_extravars(self.vm))
        self.summary.update({"ansible": "check mode" if not self.cfg.provision else "applied",
                             "changed": result.changed})
        for failure in result.failures:
            self.errors.append(f"{failure.get('host')}: {failure.get('task')}: {failure.get('msg')}")
        self.save_table("tasks", pd.DataFrame(result.tasks))
        return self.save_table("recap", pd.DataFrame(result.recap))


def start_provision(cfg: Settings) -> Provision:
    """Start phase 10."""
    return Provision(cfg)


def start_configure(cfg: Settings) -> ConfigureK3s:
    """Start phase 20."""
    return ConfigureK3s(cfg)
