"""Paths as reports show them: relative to the project, or under ``~`` — never the operator's machine layout.

A report travels (archived, mailed to an auditor); ``/home/alice/src/k3smig/targets/prod`` tells the
reader nothing but the operator's folders. Reports show ``targets/prod`` (inside the project) or
``~/.ssh/k3smig`` (inside the home folder) instead; a path elsewhere (a temporary folder) is shown as is.

Scrubbing happens where a text is produced (a table cell, a phase result, the run facts), never when a
report is rendered again: the bytes of a re-rendered report must not depend on the machine that renders it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from k3smig_lib.core.config import PACKAGE_ROOT


def _prefixes() -> list[tuple[str, str]]:
    home = os.path.expanduser("~")
    pairs = [(str(PACKAGE_ROOT), "."), (os.path.realpath(PACKAGE_ROOT), ".")]
    if home not in ("", "/"):
        pairs += [(home, "~"), (os.path.realpath(home), "~")]
    # longest first: the project usually lives under the home folder
    return sorted(set(pairs), key=lambda p: -len(p[0]))


def shown(path: str | os.PathLike[str]) -> str:
    """``path`` as a report shows it.

    Examples:
        >>> shown(PACKAGE_ROOT / "targets" / "demo"), shown(os.path.expanduser("~/.ssh/k3smig")), shown("/tmp/x")
        ('targets/demo', '~/.ssh/k3smig', '/tmp/x')
    """
    text = os.fspath(path)
    for prefix, repl in _prefixes():
        if text == prefix:
            return repl
        if text.startswith(prefix + "/"):
            rest = text[len(prefix) + 1:]
            return rest if repl == "." else f"~/{rest}"
    return text


def scrub(text: str) -> str:
    """Every machine path inside a free text (an error message, a tool's output) shown as :func:`shown` does.

    Examples:
        >>> scrub(f"{PACKAGE_ROOT}/.cache/tools/bin/promtool check config (exit code 0)")
        '.cache/tools/bin/promtool check config (exit code 0)'
    """
    for prefix, repl in _prefixes():
        if prefix in text:
            # "<root>/x" becomes "x", "<root>" alone ".", "<home>/x" "~/x"; "/rootfs" is not under "/root"
            text = re.sub(re.escape(prefix) + r"(?:/|\b)", _replacer(prefix, repl), text)
    return text


def _replacer(prefix: str, repl: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        tail = match.group(0)[len(prefix):]
        return "" if repl == "." and tail == "/" else repl + tail

    return replace
