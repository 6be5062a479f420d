"""Reports show paths relative to the project or under ~, never the operator's folders."""

import os

from k3smig_lib.core.config import PACKAGE_ROOT
from k3smig_lib.core.paths import scrub, shown


def test_paths_inside_the_project_and_the_home_folder_are_shown_relative():
    assert shown(PACKAGE_ROOT / "targets" / "demo") == "targets/demo"
    assert shown(PACKAGE_ROOT) == "."
    assert shown(os.path.expanduser("~/.ssh/k3smig_ed25519")) == "~/.ssh/k3smig_ed25519"
    assert shown("/tmp/run") == "/tmp/run"


def test_free_text_is_scrubbed_without_touching_lookalike_prefixes():
    home = os.path.expanduser("~")
    text = f"{PACKAGE_ROOT}/.cache/tools/bin/promtool check config; key {home}/.ssh/k; {PACKAGE_ROOT}"
    assert scrub(text) == ".cache/tools/bin/promtool check config; key ~/.ssh/k; ."
    assert scrub(f"{PACKAGE_ROOT}x/file") == f"{PACKAGE_ROOT}x/file"
