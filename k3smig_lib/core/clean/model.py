"""The cleaner's inputs and outputs: options, changes, cleaned objects and the report.

A :class:`CleanedObject` keeps the original next to the cleaned copy and the list of changes, each
naming the rule that made it, so the export report can show a "why was this removed?" diff and the
ledger can hash both sides (docs/cleaning-rules.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from k3smig_lib.core.objects import Obj, ObjRef, sha256_of

Action = Literal["drop", "remove", "rewrite", "keep", "warn"]

#: Namespaces every cluster creates for itself (W8).
DEFAULT_SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
#: Namespaces of the source platform layer, reinstalled on K3s by Ansible/Helm (W11).
DEFAULT_PLATFORM_NAMESPACES = frozenset({"ingress-nginx", "cert-manager", "external-dns", "traefik"})


@dataclass(frozen=True)
class CleanOptions:
    """What the target looks like, as far as cleaning is concerned.

    Attributes:
        storage_class: StorageClass every PVC is remapped to (T1). Default ``local-path``, the
            class K3s ships.
        ingress_class: ingress class every Ingress is given (K24/T4). Default ``nginx``: Traefik
            is disabled on the target.
        registry_rewrites: image prefix → new prefix (T5); the longest matching prefix wins, and
            Docker Hub short names (``nginx``) also match ``docker.io/library/nginx``.
        pull_secret_name: when set, every ``imagePullSecrets`` list is replaced by this one
            Secret (K16); ``""`` leaves the lists alone.
        keep_helm_releases: keep ``sh.helm.release.v1.*`` Secrets and Helm ownership metadata so
            ``helm upgrade`` keeps working on the target (KEEP5). Default: plain manifests.
        expose_node_ports: keep explicitly set nodePorts (KEEP2); only when the VM really exposes
            the NodePort range. Default: all nodePorts are removed (K3).
        system_namespaces: namespaces whose objects are cluster plumbing (W8).
        platform_namespaces: namespaces of source add-ons that K3s gets from Ansible (W11). The
            ACME account-key Secrets referenced by kept ClusterIssuers are kept even there (KEEP4).
        source_node_names: node names of the source cluster (K9); names of Node objects, Pod
            ``nodeName`` and ``selected-node`` annotations found in the input are added.
        external_dns_target: public address external-dns should publish for Ingresses and
            Services on the VM (T6); ``""`` keeps the source annotations as they are and warns
            about a stale ``target``.
    """

    storage_class: str = "local-path"
    ingress_class: str = "nginx"
    registry_rewrites: Mapping[str, str] = field(default_factory=dict)
    pull_secret_name: str = ""
    keep_helm_releases: bool = False
    expose_node_ports: bool = False
    system_namespaces: frozenset[str] = DEFAULT_SYSTEM_NAMESPACES
    platform_namespaces: frozenset[str] = DEFAULT_PLATFORM_NAMESPACES
    source_node_names: frozenset[str] = frozenset()
    external_dns_target: str = ""


@dataclass
class Change:
    """One thing the cleaner did to one object, and the rule that made it do it.

    ``before``/``after`` never hold Secret values: Secret data is summarised as key names or
    ``"<n bytes>"``. A whole-object whiteout is a single ``drop`` change with path ``""``.
    """

    rule_id: str
    path: str
    action: Action
    before: Any = None
    after: Any = None
    note: str = ""


@dataclass
class CleanedObject:
    """An exported object, its cleaned form (``None`` when whited out) and the changes between them."""

    ref: ObjRef
    original: Obj
    original_sha256: str
    cleaned: Obj | None
    changes: list[Change]
    facts: dict[str, Any]

    @property
    def dropped(self) -> bool:
        """True when a whiteout rule removed the whole object."""
        return self.cleaned is None

    @property
    def rule_ids(self) -> list[str]:
        """IDs of the rules that fired on this object, sorted and unique."""
        return sorted({change.rule_id for change in self.changes})

    @property
    def cleaned_sha256(self) -> str | None:
        """Hash of the cleaned object (the next link of the chain of custody), ``None`` if dropped."""
        return None if self.cleaned is None else sha256_of(self.cleaned)


@dataclass
class CleanReport:
    """Every object of one export, cleaned, with the rule IDs that explain each change."""

    objects: list[CleanedObject]
    _by_id: dict[str, CleanedObject] = field(default_factory=dict, init=False, repr=False, compare=False)
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)

    def kept(self) -> list[CleanedObject]:
        """Objects that survive cleaning, in input order."""
        return [o for o in self.objects if not o.dropped]

    def dropped(self) -> list[CleanedObject]:
        """Objects removed by a whiteout rule, in input order."""
        return [o for o in self.objects if o.dropped]

    def rule_counts(self) -> dict[str, int]:
        """Number of objects each rule touched (a rule firing on three fields of one object counts once)."""
        counts: Counter[str] = Counter()
        for obj in self.objects:
            counts.update(obj.rule_ids)
        return dict(sorted(counts.items()))

    def warnings(self) -> list[tuple[ObjRef, Change]]:
        """Every ``warn`` change (RWX downgraded, LoadBalancer kept, foreign finalizer…)."""
        return [(o.ref, c) for o in self.objects for c in o.changes if c.action == "warn"]

    def facts(self) -> dict[str, dict[str, Any]]:
        """Derived facts per object ID (§1 step 3): nodePorts, PVC chain, Helm release."""
        return {o.ref.id: o.facts for o in self.objects}

    def get(self, ref_id: str) -> CleanedObject:
        """The cleaned object with ID ``Kind/namespace/name``.

        Raises:
            KeyError: when no object of the export has that ID.
        """
        if self._indexed != len(self.objects):  # (re)index lazily: reports are built once, read often
            self._by_id = {obj.ref.id: obj for obj in reversed(self.objects)}
            self._indexed = len(self.objects)
        return self._by_id[ref_id]
