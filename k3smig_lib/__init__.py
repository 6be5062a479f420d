"""k3smig: migrate Kubernetes applications to a single-VM K3s cluster, one audited notebook per phase.

Notebooks import only the names below: ``load_config`` builds the frozen settings from a notebook's
parameters, and each phase module exposes ``start(cfg)`` plus one method per report cell. Phase modules
load lazily, so the CLI and ``k3smig_lib.core`` stay light to import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from k3smig_lib.core.config import Settings
from k3smig_lib.core.config import load as load_config
from k3smig_lib.errors import K3sMigError

if TYPE_CHECKING:
    from k3smig_lib import show
    from k3smig_lib.phases import data, deploy, export, inventory, network, preflight, secrets, validate
    from k3smig_lib.phases import infrastructure as configure_k3s
    from k3smig_lib.phases import infrastructure as provision

_LAZY = {
    "show": "k3smig_lib.show",
    "preflight": "k3smig_lib.phases.preflight",
    "provision": "k3smig_lib.phases.infrastructure",
    "configure_k3s": "k3smig_lib.phases.infrastructure",
    "inventory": "k3smig_lib.phases.inventory",
    "export": "k3smig_lib.phases.export",
    "secrets": "k3smig_lib.phases.secrets",
    "deploy": "k3smig_lib.phases.deploy",
    "data": "k3smig_lib.phases.data",
    "network": "k3smig_lib.phases.network",
    "validate": "k3smig_lib.phases.validate",
}

__all__ = [
    "K3sMigError",
    "Settings",
    "configure_k3s",
    "data",
    "deploy",
    "export",
    "inventory",
    "load_config",
    "network",
    "preflight",
    "provision",
    "secrets",
    "show",
    "validate",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(_LAZY[name])
    raise AttributeError(f"module 'k3smig_lib' has no attribute {name!r}")
