"""Which code ran: the version every ledger, report header and signed record names.

The version comes from git tags (``vX.Y.Z``): setuptools-scm writes it into the package metadata
when the package is built, and a checkout is asked directly, because an editable install keeps the
metadata of the day it was installed while the code moves on. An auditor reading ``k3smig 0.2.0
+3 commits (abc1234, with uncommitted changes)`` knows the release, how far the code was past it, the
exact commit, and that the run did not use committed code.
"""

from __future__ import annotations

import re
import subprocess
from importlib.metadata import PackageNotFoundError, version

from k3smig_lib.core.config import PACKAGE_ROOT

#: ``git describe --long`` of a tagged checkout: tag, commits since it, abbreviated commit.
_DESCRIBED = re.compile(r"^v(?P<tag>\d[^-]*)-(?P<distance>\d+)-g(?P<commit>[0-9a-f]+)$")


def _git(*args: str) -> str:
    """Output of one git command on the package's checkout; empty when there is no git or no checkout."""
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_ROOT), *args], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def describe(described: str, dirty: bool, installed: str) -> str:
    """The version line from ``git describe --tags --long --always`` output (pure, so it is tested alone).

    Examples:
        >>> describe("v0.2.0-0-gabc1234", False, "0.2.0")
        'k3smig 0.2.0 (abc1234)'
        >>> describe("v0.2.0-3-gabc1234", True, "0.2.0")
        'k3smig 0.2.0 +3 commits (abc1234, with uncommitted changes)'
        >>> describe("abc1234", False, "0.1.dev7+gfff0000")
        'k3smig untagged (abc1234)'
        >>> describe("", False, "0.2.0")
        'k3smig 0.2.0'
    """
    if not described:  # an installed wheel: its metadata was written from the tag it was built at
        return f"k3smig {installed}"
    m = _DESCRIBED.match(described)
    if m:
        release = m["tag"] + (f" +{m['distance']} commits" if m["distance"] != "0" else "")
        commit = m["commit"]
    else:  # a checkout with no release tag yet: the commit alone says which code ran
        release, commit = "untagged", described
    if dirty:  # the report must not claim a commit whose code did not run as committed
        commit += ", with uncommitted changes"
    return f"k3smig {release} ({commit})"


def code_version() -> str:
    """The version line of the code running now (see the module docstring)."""
    try:
        installed = version("k3smig")
    except PackageNotFoundError:
        installed = "unknown"
    described = _git("describe", "--tags", "--match", "v[0-9]*", "--long", "--always", "--abbrev=7")
    dirty = bool(described) and bool(_git("status", "--porcelain", "--untracked-files=no"))
    return describe(described, dirty, installed)
