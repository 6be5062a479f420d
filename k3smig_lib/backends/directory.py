"""Directory target: a GitOps tree of cleaned manifests (kustomize, in apply order) plus volume folders.

This is what Argo CD or Flux would consume, and what the demo migrates into. Secrets are never written
in plaintext: they are SOPS/age-sealed for a recipient, or written without values when none is given.
Writes are all-or-nothing: when any object conflicts under the ``fail`` policy, nothing is written.
Every file goes through :mod:`k3smig_lib.core.fsafe` (confined to the tree, atomic), so a crash or a
full disk leaves each manifest either old or new, never empty. File names are unique per API group,
kind, namespace and name; names that are long or not plain get a shortened form with a hash. The
``kustomization.yaml`` always lists every manifest of the tree, in apply order, so the tree builds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from k3smig_lib.backends.base import ApplyItem, ApplyResult, SourceInfo, VolumeRef
from k3smig_lib.backends.directory_volumes import FolderVolume
from k3smig_lib.core import yamlout
from k3smig_lib.core.clean.context import BUILTIN_GROUPS
from k3smig_lib.core.fsafe import atomic_write, confined_path, staged_write
from k3smig_lib.core.objects import Obj, ref, sha256_of
from k3smig_lib.core.order import apply_key, stage_dir_name, stage_of
from k3smig_lib.core.sealing import GENERATOR_API_VERSION, SECRET_VALUES_DIR
from k3smig_lib.core.yamlio import load_yaml, read_text
from k3smig_lib.errors import TargetError

SecretTransform = Callable[[Obj], Obj]
KUSTOMIZATION = "kustomization.yaml"
#: Written at the tree's root: keys and k3smig's own state (lock) never belong in the repository.
GITIGNORE = """# k3smig: private keys and run state never belong in a GitOps repository
.k3smig/
*.agekey
age-identity*.txt
keys.txt
"""
#: Added when the tree has secret generators: the values the user fills in stay out of the repository.
SECRET_VALUES_IGNORE = f"manifests/{SECRET_VALUES_DIR}/\n"
#: Groups whose kinds keep the short file name ``<kind>-<name>.yaml`` (their kind names are unique).
_SHORT_NAME_GROUPS = BUILTIN_GROUPS - {"extensions", "events.k8s.io"}
_PLAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
#: Longest file name stem before it is shortened with a hash (file systems allow 255 bytes).
MAX_STEM = 150


def dump_yaml(obj: Obj) -> str:
    """Stable YAML for an object (sorted keys, block style) so re-runs write identical bytes."""
    return yamlout.dump(obj, sort_keys=True, default_flow_style=False, allow_unicode=True, width=120)


def object_filename(obj: Obj) -> str:
    """File name of an object, unique per API group, kind, namespace and name, always a plain file name.

    ``<kind>-<name>.yaml`` for the built-in groups, ``<kind>.<group>-<name>.yaml`` otherwise (an OpenShift
    ``authorization.openshift.io`` RoleBinding next to the RBAC one). A name that is not plain (RBAC names
    such as ``system:deployers``) or too long is cut and made unique with ``_<hash>``: plain names
    never contain ``_``, so the two forms cannot collide.

    Examples:
        >>> object_filename({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app"}})
        'configmap-app.yaml'
        >>> object_filename({"apiVersion": "authorization.openshift.io/v1", "kind": "RoleBinding",
        ...                  "metadata": {"name": "admin", "namespace": "shop"}})
        'rolebinding.authorization.openshift.io-admin.yaml'
    """
    r = ref(obj)
    kind = r.kind.lower() if r.group in _SHORT_NAME_GROUPS else f"{r.kind.lower()}.{r.group}"
    stem = f"{kind}-{r.name}"
    if _PLAIN_NAME.match(r.name) and len(stem) <= MAX_STEM:
        return f"{stem}.yaml"
    digest = hashlib.sha256(f"{r.group}/{r.kind}/{r.namespace}/{r.name}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^a-z0-9.-]+", "-", stem.lower())[:MAX_STEM].strip(".-")
    return f"{safe}_{digest}.yaml"


@dataclass(frozen=True)
class TreeFile:
    """One manifest already in the tree."""

    rel: str
    text: str
    obj: Obj


class DirectoryTarget:
    """Write cleaned objects as a kustomize tree under ``root/manifests`` and volumes under ``root/volumes``.

    Args:
        root: target folder.
        seal: turns a plain Secret into what is written (sealed or values stripped).
        unseal: turns a written Secret back into a plain one for comparison, when a key is available.
    """

    def __init__(self, root: Path, *, seal: SecretTransform, unseal: SecretTransform | None = None,
                 volume_margin: float = 0.1) -> None:
        self.root = root
        self.volume_margin = volume_margin
        self.manifests = root / "manifests"
        self._seal = seal
        self._unseal = unseal

    def info(self) -> SourceInfo:
        """Describe the directory target."""
        return SourceInfo(kind="directory", location=str(self.root), distribution="k3s (GitOps tree)")

    def _rel(self, obj: Obj) -> str:
        r = ref(obj)
        return f"manifests/{stage_dir_name(stage_of(obj))}/{r.namespace or '_cluster'}/{object_filename(obj)}"

    def _tree(self) -> dict[str, TreeFile]:
        """Every manifest of the tree by object identity (files that are not objects are errors)."""
        files: dict[str, TreeFile] = {}
        if not self.manifests.is_dir():
            return files
        for path in sorted(self.manifests.rglob("*.yaml")):
            if path.name == KUSTOMIZATION or path.is_symlink():
                continue
            rel = path.relative_to(self.root).as_posix()
            text = read_text(confined_path(self.root, rel), error=TargetError, what="target manifest")
            obj = load_yaml(text, str(path), error=TargetError)
            if not isinstance(obj, dict) or not obj.get("kind"):
                raise TargetError(f"target manifest {path} is empty or not a Kubernetes object (an interrupted "
                                  "write of an older k3smig, or a file added by hand)",
                                  fix="delete the file and re-run the phase: k3smig writes it again")
            files[ref(obj).identity] = TreeFile(rel, text, obj)
        return files

    def _same(self, obj: Obj, current: str, text: str) -> bool:
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

        An object already in the tree under another file name (an older naming scheme) is moved: the
        new file is written and the old one removed.

        Raises:
            TargetError: a file cannot be written, or a file of the tree is not a Kubernetes object.
            UnsafePathError: a name would place a file outside the tree (refused even in a dry run).
        """
        result = ApplyResult(dry_run=dry_run)
        tree = self._tree()
        entries = {key: (f.rel, f.obj) for key, f in tree.items()}  # the tree as it will be: for the kustomization
        writes: list[tuple[str, str]] = []
        moved: list[str] = []
        for obj in sorted(objects, key=apply_key):
            rel = self._rel(obj)
            confined_path(self.root, rel)
            written = self._seal(obj) if obj.get("kind") == "Secret" else obj
            text = dump_yaml(written)
            entries[ref(obj).identity] = (rel, written)
            item = ApplyItem(ref_id=ref(obj).id, action="create", sha256=sha256_of(obj), path=rel)
            found = tree.get(ref(obj).identity)
            if found is not None:
                if self._same(obj, found.text, text):
                    item.action, item.reason = "unchanged", "file already holds this object"
                elif existing == "update":
                    item.action, item.reason = "update", "file differs; policy existing=update"
                else:
                    item.action = "conflict"
                    item.reason = "file exists and differs (policy existing=fail: not overwritten)"
                if found.rel != rel:
                    moved.append(found.rel)
                    item.reason = (item.reason + "; " if item.reason else "") + f"moved from {found.rel}"
            result.items.append(item)
            if item.action in ("create", "update"):
                writes.append((rel, text))
            elif found is not None and found.rel != rel:  # unchanged, but under an older file name
                writes.append((rel, found.text))
        if dry_run or any(i.action == "conflict" for i in result.items):
            return result
        for rel, text in writes:
            atomic_write(self.root, rel, text)
        for rel in moved:
            confined_path(self.root, rel).unlink(missing_ok=True)
        self._write_guards(entries.values())
        return result

    def write_new(self, objects: Iterable[Obj]) -> int:
        """Write ``objects`` into a tree that has no manifests yet, each as soon as it comes; return how many.

        The streaming counterpart of ``apply(objects, dry_run=False)`` on an empty tree, for a tree
        built in a staging folder (:func:`~k3smig_lib.core.fsafe.staged_write`: the caller syncs and
        renames it into place): the same files and ``kustomization.yaml``, byte for byte, while memory
        keeps only each manifest's path and apply-order key.

        Raises:
            TargetError: the tree already holds manifests.
            UnsafePathError: a name would place a file outside the tree.
        """
        if self.manifests.exists():
            raise TargetError(f"{self.manifests} exists: write_new only builds a new tree",
                              fix="give an empty folder")
        keys: dict[str, tuple[tuple[int, int, str, str, str], str]] = {}
        generators: set[str] = set()
        for obj in objects:
            rel = self._rel(obj)
            written = self._seal(obj) if obj.get("kind") == "Secret" else obj
            staged_write(self.root, rel, dump_yaml(written))
            keys[ref(obj).identity] = (apply_key(obj), rel)
            if written.get("apiVersion") == GENERATOR_API_VERSION:  # a Secret whose values the user fills in
                generators.add(rel)
        files = sorted(keys.values())
        self._write_index([f for f in files if f[1] not in generators], [rel for _, rel in files if rel in generators])
        return len(keys)

    def _write_guards(self, entries: Iterable[tuple[str, Obj]]) -> None:
        """``kustomization.yaml`` listing every manifest in apply order, and the tree's ``.gitignore``."""
        self._write_index(sorted((apply_key(obj), rel) for rel, obj in entries))

    def _write_index(self, files: Sequence[tuple[tuple[int, int, str, str, str], str]],
                     generators: Sequence[str] = ()) -> None:
        """``kustomization.yaml`` for ``(apply key, path)`` pairs in apply order, and the ``.gitignore``.

        ``generators`` are secret generator configs (:func:`~k3smig_lib.core.sealing.secret_generator`):
        listed under ``generators:``, and the folder of the values they read is ignored by git.
        """
        index: dict[str, object] = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "sortOptions": {"order": "fifo"},  # keep k3smig's apply order (docs/cleaning-rules.md §8)
            "resources": [rel.removeprefix("manifests/") for _, rel in files],
        }
        if generators:
            index["generators"] = [rel.removeprefix("manifests/") for rel in generators]
        atomic_write(self.root, f"manifests/{KUSTOMIZATION}", dump_yaml(index))
        ignore = self.root / ".gitignore"
        current = read_text(ignore, error=TargetError, what="ignore file") if ignore.is_file() else ""
        missing = [block for block in (GITIGNORE, SECRET_VALUES_IGNORE if generators else "")
                   if block and block not in current]
        if missing:
            atomic_write(self.root, ".gitignore", current + ("\n" if current and not current.endswith("\n") else "")
                         + "".join(missing))

    def list_objects(self) -> list[Obj]:
        """Objects in the tree; Secrets unsealed when a key is available.

        Raises:
            TargetError: a file of the tree is empty or not a Kubernetes object (the file is named).
        """
        objs: list[Obj] = []
        for found in self._tree().values():
            obj = found.obj
            if obj.get("kind") == "Secret" and self._unseal is not None and "sops" in obj:
                obj = self._unseal(obj)
            objs.append(obj)
        return objs

    @contextmanager
    def volume(self, volume: VolumeRef, *, user: tuple[int, int] | None = None) -> Iterator[FolderVolume]:
        """The folder of ``volume`` behind the transfer port (``user`` is moot: this process writes it)."""
        yield FolderVolume(self.root, volume, margin=self.volume_margin)
