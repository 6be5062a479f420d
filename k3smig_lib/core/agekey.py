"""The age identity of ``age_recipient: auto``: kept in the user's config folder, never in the GitOps tree.

The demo seals Secrets for a key of its own so the tree stays decryptable for validation and re-runs.
That key used to live in ``<target>/.k3smig/age-identity.txt``, one ``git add -A`` away from the
repository that Flux or Argo CD reads, next to the very Secrets it opens (issue 9). It now lives in
``$XDG_CONFIG_HOME/k3smig/age/<environment>.txt`` (``~/.config`` by default), mode 0600 in a 0700
folder, and a key found at the old place is moved there once.

Back it up like any private key (a password manager or an offline copy): without it the sealed
Secrets of the tree cannot be opened, and ``k3smig`` would seal the next run for a new key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from k3smig_lib.core.fsafe import confined_path, ensure_dir
from k3smig_lib.errors import TargetError
from k3smig_lib.log import logger

#: Where the identity was kept before (inside the target tree); moved out on first use.
LEGACY_IDENTITY = ".k3smig/age-identity.txt"


def config_home() -> Path:
    """``$XDG_CONFIG_HOME`` or ``~/.config``."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def identity_path(environment: str) -> Path:
    """File of the auto identity of ``environment`` (``~/.config/k3smig/age/<environment>.txt``)."""
    return confined_path(config_home(), "k3smig", "age", f"{environment}.txt")


def _read(path: Path) -> str:
    import pyrage

    text = path.read_text(encoding="utf-8").strip()
    try:
        pyrage.x25519.Identity.from_str(text)
    except Exception as e:  # noqa: BLE001 - pyrage raises its own untyped errors
        raise TargetError(f"the age identity {path} cannot be read as an age key",
                          fix="restore it from your backup; without it the sealed Secrets cannot be opened") from e
    return text


def _create(path: Path, text: str) -> str:
    """Write a new key without ever replacing one (two first runs at once keep the first key)."""
    folder = ensure_dir(config_home(), "k3smig", "age", mode=0o700)
    tmp = folder / f".k3smig-tmp-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return _read(path)
    finally:
        tmp.unlink(missing_ok=True)
    return text


def _adopt_legacy(path: Path, legacy: Path, create: bool) -> str | None:
    """Move a key found inside the target tree to ``path``; return it (``None`` when there is none)."""
    if not legacy.is_file() or legacy.is_symlink():
        return None
    old = _read(legacy)
    if not create:
        return old
    current = _read(path) if path.is_file() else _create(path, old)
    if current != old:
        raise TargetError(f"two different age identities: {legacy} (inside the target tree) and {path}",
                          fix=f"keep the one that opens the sealed Secrets of the tree at {path}, then delete {legacy}")
    legacy.unlink()
    logger.warning("moved the age identity out of the target tree to %s; if the tree was ever pushed with it, "
                   "rotate the key (new key, re-run)", path)
    return old


def auto_identity(environment: str, *, create: bool = True, legacy_root: Path | None = None) -> tuple[str, str]:
    """Return (identity, recipient) of the environment's own age key, creating it (mode 0600) on first use.

    Args:
        environment: the run's environment (a DNS-1123 label: it names the file).
        create: ``False`` in a dry run: a missing key is replaced by a throwaway one and nothing is written.
        legacy_root: a target tree that may still hold the key at its old place (moved out when found).

    Raises:
        TargetError: the key file is damaged, or the tree holds a different key than the config folder.
    """
    import pyrage

    path = identity_path(environment)
    text = _adopt_legacy(path, legacy_root / LEGACY_IDENTITY, create) if legacy_root is not None else None
    if text is None and path.is_file():
        text = _read(path)
    if text is None:
        fresh = str(pyrage.x25519.Identity.generate())
        text = _create(path, fresh) if create else fresh
    return text, str(pyrage.x25519.Identity.from_str(text).to_public())
