"""Which cluster a client talks to, named without importing the Kubernetes client.

Kept apart from :mod:`k3smig_lib.k8s.client` so that code which only names a cluster (the phases'
context, the runner) does not pay for importing ``kubernetes``, its ~1,000 generated modules and,
through its optional ``kubernetes_validate``, jsonschema's format checkers: seconds in every kernel of
a run whose source is a snapshot and whose target is a folder.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterRef:
    """Which cluster a client talks to: the kubeconfig file and the context inside it."""

    kubeconfig: str
    context: str
    side: str = ""  # "source" or "target", for messages
