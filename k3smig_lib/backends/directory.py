"""Directory target: a GitOps tree of cleaned manifests (kustomize, in apply order) plus volume folders.

This is what Argo CD or Flux would consume, and what the demo migrates into. Secrets are never written
in plaintext: they are SOPS/age-sealed for a recipient, or written without values when none is given.
Writes are all-or-nothing: when any object conflicts under the ``fail`` policy, nothing is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import yaml

from k3smig_lib.backends.base import ApplyItem, ApplyResult, SourceInfo, VolumeRef
from k3smig_lib.backends.directory_volumes import FolderVolume
from k3smig_lib.core.objects import Obj, ref, sha256_of
from k3smig_lib.core.order import sort_for_apply, stage_dir_name, stage_of
from k3smig_lib.errors import TargetError

SecretTransform = Callable[[Obj], Obj]
IDENTITY_FILE = ".k3smig/age-identity.txt"


def dump_yaml(obj: Obj) -> str:
    """Stable YAML for an object (sorted keys, block style) so re-runs write identical bytes."""
    return yaml.safe_dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def object_filename(obj: Obj) -> str:
    """``<kind>-<name>.yaml`` in lower case."""
    r = ref(obj)
    return f"{r.kind.lower()}-{r.name}.yaml"


def auto_identity(root: Path, *, create: bool = True) -> tuple[str, str]:
    """Return (identity, recipient) of the target's own age key, creating it (mode 0600) on first use.

    With ``create=False`` (dry run) a missing key is replaced by a throwaway one, so planning writes nothing.

    Used when ``age_recipient: auto`` (the demo): the tree stays decryptable for validation and
    re-runs, and the key never enters the run folder. Real users name their own recipient.
    """
    import pyrage

    path = root / IDENTITY_FILE
    if path.is_file():
        identity_text = path.read_text().strip()
        identity = pyrage.x25519.Identity.from_str(identity_text)
    else:
        identity = pyrage.x25519.Identity.generate()
        identity_text = str(identity)
        if not create:
            return identity_text, str(identity.to_public())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(identity_text + "\n")
    return identity_text, str(identity.to_public())


class DirectoryTarget:
    """Write cleaned objects as a kustomize tree under ``root/manifests`` and volumes under ``root/volumes``.

    Args:
        root: target folder.
        seal: turns a plain Secret into what is written (sealed or values stripped).
        unseal: turns a written Secret back into a plain one for comparison, when a key is available.
    """

    def __init__(self, root: Path, *, seal: SecretTransform, unseal: SecretTransform | None = None) -> None:
        self.root = root
        self.manifests = root / "manifests"
        self._seal = seal
        self._unseal = unseal

    def info(self) -> SourceInfo:
        """Describe the directory target."""
        return SourceInfo(kind="directory", location=str(self.root), distribution="k3s (GitOps tree)")

    def _path(self, obj: Obj) -> Path:
        r = ref(obj)
        return self.manifests / stage_dir_name(stage_of(obj)) / (r.namespace or "_cluster") / object_filename(obj)

    def _same(self, obj: Obj, path: Path, text: str) -> bool:
        current = path.read_text(encoding="utf-8")
        if current == text:
            return True
        if obj.get("kind") == "Secret" and self._unseal is not None:
            try:
                existing = self._unseal(yaml.safe_load(current))
            except Exception:  # noqa: BLE001 - an unreadable sealed file simply counts as different
                return False
            return sha256_of(existing) == sha256_of(obj)
        return False

    def apply(self, objects: Sequence[Obj], *, dry_run: bool, existing: str = "fail") -> ApplyResult:
        """Plan (and unless ``dry_run``, write) ``objects`` in apply order.

        Raises:
            TargetError: a file cannot be written.
        """
        result = ApplyResult(dry_run=dry_run)
        writes: list[tuple[Path, str]] = []
        for obj in sort_for_apply(objects):
            path = self._path(obj)
            text = dump_yaml(self._seal(obj) if obj.get("kind") == "Secret" else obj)
            rel = str(path.relative_to(self.root))
            item = ApplyItem(ref_id=ref(obj).id, action="create", sha256=sha256_of(obj), path=rel)
            if path.is_file():
                if self._same(obj, path, text):
                    item.action, item.reason = "unchanged", "file already holds this object"
                elif existing == "update":
                    item.action, item.reason = "update", "file differs; policy existing=update"
                else:
                    item.action = "conflict"
                    item.reason = "file exists and differs (policy existing=fail: not overwritten)"
            result.items.append(item)
            if item.action in ("create", "update"):
                writes.append((path, text))
        if dry_run or any(i.action == "conflict" for i in result.items):
            return result
        try:
            for path, text in writes:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            self._write_kustomization(result)
        except OSError as e:
            raise TargetError(f"cannot write the target tree under {self.root}: {e}",
                              fix="check the target_dir path and its permissions") from e
        return result

    def _write_kustomization(self, result: ApplyResult) -> None:
        resources = [str(Path(i.path).relative_to("manifests")) for i in result.items if i.path]
        text = dump_yaml(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "sortOptions": {"order": "fifo"},  # keep k3smig's apply order (CLEANING-RULES §8)
                "resources": resources,
            }
        )
        (self.manifests / "kustomization.yaml").write_text(text, encoding="utf-8")

    def list_objects(self) -> list[Obj]:
        """Objects in the tree; Secrets unsealed when a key is available."""
        objs: list[Obj] = []
        if not self.manifests.is_dir():
            return objs
        for path in sorted(self.manifests.rglob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            obj = yaml.safe_load(path.read_text(encoding="utf-8"))
            if obj.get("kind") == "Secret" and self._unseal is not None and "sops" in obj:
                obj = self._unseal(obj)
            objs.append(obj)
        return objs

    @contextmanager
    def volume(self, volume: VolumeRef, *, user: tuple[int, int] | None = None) -> Iterator[FolderVolume]:
        """The folder of ``volume`` behind the transfer port (``user`` is moot: this process writes it)."""
        yield FolderVolume(self.root, volume)
