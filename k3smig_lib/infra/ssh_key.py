"""The operator's SSH key for the VM, generated here rather than by Terraform.

A ``tls_private_key`` resource would put the private key in Terraform state in plaintext (``sensitive``
only hides it from the console), and state is exactly what gets copied around. So k3smig generates an
Ed25519 key on the operator's machine, writes it with mode 0600 outside any git work tree, and hands
Terraform only the public half to register.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from k3smig_lib.errors import ParameterError


def _inside_git(path: Path) -> Path | None:
    """Return the work tree containing ``path``, if any: a key there is one ``git add -A`` from leaking."""
    for parent in path.parents:
        if (parent / ".git").exists():
            return parent
    return None


def _public_from_private(path: Path) -> str:
    """Derive the OpenSSH public line from an existing private key file."""
    try:
        key = serialization.load_ssh_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ParameterError(
            f"{path} is not an unencrypted OpenSSH private key",
            fix="point ssh_key_path at a new file name; k3smig generates the key itself",
        ) from e
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return public.decode()


def ensure_ssh_key(path: Path, *, comment: str = "k3smig") -> str:
    """Create the key pair at ``path`` unless it exists, and return the public key line.

    Args:
        path: private key file (``~`` is expanded); ``<path>.pub`` gets the public half.
        comment: comment appended to the public key line.

    Returns:
        The OpenSSH public key line (``ssh-ed25519 AAAA… comment``).

    Raises:
        ParameterError: the path is inside a git work tree, or an existing key is readable by
            others or is not an unencrypted OpenSSH private key.

    Examples:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> ensure_ssh_key(d / "id").startswith("ssh-ed25519 ")
        True
    """
    path = path.expanduser().absolute()
    tree = _inside_git(path)
    if tree is not None:
        raise ParameterError(
            f"the SSH private key path {path} is inside the git work tree {tree}",
            fix="set ssh_key_path outside any repository, such as ~/.ssh/k3smig_ed25519",
        )
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ParameterError(
                f"the SSH private key {path} has mode {mode:04o}, readable by others",
                fix=f"run chmod 600 {path}",
            )
        return _public_from_private(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    # O_EXCL + 0600 at creation: the key is never on disk with a wider mode, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = f"{public.decode()} {comment}"
    Path(f"{path}.pub").write_text(line + "\n")
    return line
