"""Build the source, target and shared helpers of a phase from the settings (one place for wiring)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial

from k3smig_lib.backends.base import Source, Target
from k3smig_lib.backends.directory import DirectoryTarget
from k3smig_lib.backends.snapshot import SnapshotSource
from k3smig_lib.core.agekey import auto_identity
from k3smig_lib.core.clean import CleanOptions, CleanReport, clean_objects
from k3smig_lib.core.config import Settings
from k3smig_lib.core.objects import Obj
from k3smig_lib.core.sealing import is_age_recipient, seal_secret, strip_values, unseal_secret
from k3smig_lib.errors import ParameterError
from k3smig_lib.k8s.ref import ClusterRef

AGE_IDENTITY_ENV = "K3SMIG_AGE_IDENTITY"


_LIVE_SOURCES: dict[tuple[str, str], Source] = {}


def source_ref(cfg: Settings) -> ClusterRef:
    """The live source cluster named by the settings (explicit kubeconfig and context)."""
    return ClusterRef(cfg.source_kubeconfig, cfg.source_context, "source")


def target_ref(cfg: Settings) -> ClusterRef:
    """The live target cluster named by the settings."""
    return ClusterRef(cfg.target_kubeconfig, cfg.target_context, "target")


def open_source(cfg: Settings) -> Source:
    """The source named by the settings (a live source is listed once per kernel, then reused).

    Raises:
        ParameterError: a live source without kubeconfig or context.
    """
    if cfg.source_kind == "snapshot":
        return SnapshotSource(cfg.snapshot_path())
    ref = source_ref(cfg)
    key = (ref.kubeconfig, ref.context)
    if key not in _LIVE_SOURCES:
        from k3smig_lib.backends.live_source import LiveSource

        _LIVE_SOURCES[key] = LiveSource(ref)
    live = _LIVE_SOURCES[key]
    live.run_id, live.helper_image = cfg.run_path().name, cfg.volume_helper_image  # type: ignore[attr-defined]
    return live


def secret_codec(cfg: Settings) -> tuple[Callable[[Obj], Obj], Callable[[Obj], Obj] | None]:
    """How Secrets are written to a directory target, and read back for comparison.

    ``age_recipient: auto`` uses the environment's own key, kept in the user's config folder, never in the
    tree (demo; :mod:`k3smig_lib.core.agekey`); an ``age1…`` recipient seals for it and
    reads back only when ``K3SMIG_AGE_IDENTITY`` is set; no recipient writes Secrets without values.

    Raises:
        ParameterError: the recipient is neither ``auto`` nor an age public key.
    """
    recipient = cfg.age_recipient
    if not recipient:
        return strip_values, None
    if recipient == "auto":
        identity, public = auto_identity(cfg.environment, create=cfg.apply, legacy_root=cfg.target_path())
        return partial(seal_secret, recipient=public), partial(unseal_secret, identity=identity)
    if not is_age_recipient(recipient):
        raise ParameterError(f"age_recipient {recipient!r} is not an age public key",
                             fix="give an 'age1…' recipient, 'auto', or leave it empty")
    identity_env = os.environ.get(AGE_IDENTITY_ENV, "")
    unseal = partial(unseal_secret, identity=identity_env) if identity_env else None
    return partial(seal_secret, recipient=recipient), unseal


def open_target(cfg: Settings) -> Target:
    """The target named by the settings.

    Raises:
        ParameterError: a live target without kubeconfig or context.
    """
    if cfg.target_kind == "directory":
        seal, unseal = secret_codec(cfg)
        return DirectoryTarget(cfg.target_path(), seal=seal, unseal=unseal, volume_margin=cfg.volume_size_margin)
    from k3smig_lib.backends.live_target import LiveTarget

    return LiveTarget(target_ref(cfg), existing=cfg.existing, run_id=cfg.run_path().name,
                      helper_image=cfg.volume_helper_image)


def clean_options(cfg: Settings) -> CleanOptions:
    """Cleaner options derived from the settings."""
    return CleanOptions(
        storage_class=cfg.storage_class,
        ingress_class=cfg.ingress_class,
        registry_rewrites=dict(cfg.registry_rewrites),
        pull_secret_name=cfg.registry_pull_secret if cfg.registry_rewrites else "",
        keep_helm_releases=cfg.keep_helm_releases,
        external_dns_target=cfg.ingress_address,
    )


def selected_objects(cfg: Settings, source: Source) -> list[Obj]:
    """Source objects after the namespace selection (cluster-scoped objects always pass)."""
    include, exclude = set(cfg.namespaces), set(cfg.exclude_namespaces)
    out = []
    for obj in source.list_objects():
        ns = (obj.get("metadata") or {}).get("namespace") or ""
        if obj.get("kind") == "Namespace":
            ns = obj["metadata"]["name"]
        if ns and ((include and ns not in include) or ns in exclude):
            continue
        out.append(obj)
    return out


def cleaned(cfg: Settings, source: Source) -> CleanReport:
    """Run the cleaning rules over the selected source objects."""
    return clean_objects(selected_objects(cfg, source), clean_options(cfg))
