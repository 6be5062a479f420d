"""The local Kubernetes sandbox: a source and a K3s-like target control plane on 127.0.0.1.

Built from upstream Go modules by ``tools/build-sandbox.sh``; see docs/sandbox.md. The CLI's
``k3smig sandbox up|down|status`` and the integration tests' session fixture call these functions.
"""

from k3smig_lib.sandbox.binaries import default_bin_dir, ensure_binaries
from k3smig_lib.sandbox.lifecycle import ProcessStatus, SandboxStatus, down, running, status, up
from k3smig_lib.sandbox.seed import SeedReport, seed_source

__all__ = [
    "ProcessStatus",
    "SandboxStatus",
    "SeedReport",
    "default_bin_dir",
    "down",
    "running",
    "ensure_binaries",
    "seed_source",
    "status",
    "up",
]
