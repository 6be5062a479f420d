"""Adapters around the infrastructure tools: OpenTofu/Terraform (phase 10) and Ansible (phase 20).

``render`` is pure (the demo's dry run uses it with no tool installed); ``terraform`` and ``ansible``
run the real tools; ``ssh_key`` owns the operator's key pair, kept out of Terraform state.
"""

from k3smig_lib.infra.ansible import RunnerResult, run_playbook
from k3smig_lib.infra.render import (
    INSTANCE_SIZES,
    VmSettings,
    planned_commands,
    render_extravars,
    render_inventory,
    render_tfvars,
)
from k3smig_lib.infra.ssh_key import ensure_ssh_key
from k3smig_lib.infra.terraform import PlanSummary, find_binary

__all__ = [
    "INSTANCE_SIZES",
    "PlanSummary",
    "RunnerResult",
    "VmSettings",
    "ensure_ssh_key",
    "find_binary",
    "planned_commands",
    "render_extravars",
    "render_inventory",
    "render_tfvars",
    "run_playbook",
]
