"""Project hygiene a fresh clone relies on: licence, changelog, contributor guide, the lock, environment.yml."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_the_license_file_is_the_licence_pyproject_declares():
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole licence, not a stub


def test_no_licence_classifier_competes_with_the_spdx_expression():
    # setuptools refuses "License ::" classifiers next to a PEP 639 licence expression
    assert not [c for c in PROJECT["classifiers"] if c.startswith("License ::")]
    oldest = PROJECT["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {oldest}" in PROJECT["classifiers"]


def test_changelog_has_an_unreleased_section_and_contributing_says_how_to_check():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    for needed in ("make check", "make golden", "make notebooks", "make lock", "scripts/write_rules_doc.py"):
        assert needed in contributing, needed


# --- the lock (constraints.txt) and environment.yml ---------------------------------------------------

#: conda-forge names of PyPI distributions that are packaged under another name there.
CONDA_NAMES = {"python-kubernetes": "kubernetes", "matplotlib-base": "matplotlib"}
#: The test tools: they belong to the dev extra, never to what a migration installs.
TEST_TOOLS = {"pytest", "pytest-timeout", "nbval", "mypy", "ruff", "import-linter", "molecule", "ansible-lint"}


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): r for r in reqs}


RUNTIME = _requirements(PROJECT["dependencies"])
DEV = _requirements(PROJECT["optional-dependencies"]["dev"])


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a name==version pin"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def _conda_env() -> tuple[dict[str, SpecifierSet], dict[str, SpecifierSet], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, pip, other = {}, {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-e "):
                    other.append(line)
                else:
                    req = Requirement(line)
                    pip[canonicalize_name(req.name)] = req.specifier
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", dep)
        assert match, dep
        name, spec = match.groups()
        if name in ("python", "pip"):
            other.append(dep)
            continue
        conda[canonicalize_name(CONDA_NAMES.get(name, name))] = SpecifierSet(spec)
    return conda, pip, other


def test_test_tools_are_in_the_dev_extra_not_in_the_runtime_dependencies():
    assert not TEST_TOOLS & set(RUNTIME)
    assert TEST_TOOLS <= set(DEV)


def test_the_lock_pins_every_declared_dependency_within_its_range():
    lock = _lock()
    problems = []
    for name, req in {**RUNTIME, **DEV}.items():
        if name not in lock:
            problems.append(f"{name} is not pinned")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{name}=={lock[name]} is outside {req.specifier}")
    assert problems == [], "run `make lock`"
    assert "k3smig" not in lock  # the project itself is installed from the tree, never pinned


def test_the_makefile_installs_with_the_lock_and_can_refresh_it():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[dev]'" in makefile
    assert re.search(r"^\$\(STAMP\): pyproject.toml constraints.txt", makefile, re.M)
    assert re.search(r"^lock:", makefile, re.M) and "scripts/write_lock.py" in makefile


def test_environment_yml_lists_the_runtime_dependencies_with_the_same_ranges():
    conda, pip, other = _conda_env()
    declared = {**conda, **pip}
    assert set(declared) == set(RUNTIME), "environment.yml and pyproject.toml list different packages"
    assert {name: str(spec) for name, spec in declared.items()} == {
        name: str(req.specifier) for name, req in RUNTIME.items()}
    assert "-e .[dev]" in other  # k3smig itself, with the test tools, from the tree


def test_environment_yml_python_is_one_pyproject_allows_and_the_lock_was_made_with():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    version = python.split("=", 1)[1]
    assert SpecifierSet(PROJECT["requires-python"]).contains(f"{version}.0")
    header = (ROOT / "constraints.txt").read_text().splitlines()[1]
    assert f"Python {version}." in header


def test_the_lock_satisfies_environment_yml():
    lock = _lock()
    conda, pip, _ = _conda_env()
    outside = [f"{name}=={lock[name]} not in {spec}" for name, spec in {**conda, **pip}.items()
               if not spec.contains(lock[name], prereleases=True)]
    assert outside == []


# --- the version comes from git tags -------------------------------------------------------------------


def test_the_version_is_not_written_by_hand_but_read_from_git_tags():
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    assert any(r.startswith("setuptools-scm") for r in PYPROJECT["build-system"]["requires"])
    assert PYPROJECT["tool"]["setuptools_scm"]["fallback_version"]


def test_a_run_names_the_release_tag_the_commits_past_it_and_uncommitted_changes():
    from k3smig_lib.runbook.version import describe

    assert describe("v1.4.0-0-g0123abc", False, "1.4.0") == "k3smig 1.4.0 (0123abc)"
    dirty = describe("v1.4.0-12-g0123abc", True, "1.4.0")
    assert dirty == "k3smig 1.4.0 +12 commits (0123abc, with uncommitted changes)"
    assert describe("0123abc", False, "0.1.dev3+g0123abc") == "k3smig untagged (0123abc)"
    assert describe("", False, "1.4.0") == "k3smig 1.4.0"  # a wheel outside any checkout: its metadata


def test_a_tag_in_a_checkout_becomes_the_version_the_run_records(tmp_path):
    # a real git checkout of the package, tagged: the code in it reports the tag, then the commits past it
    import shutil
    import subprocess
    import sys

    checkout = tmp_path / "checkout"
    shutil.copytree(ROOT / "k3smig_lib", checkout / "k3smig_lib", ignore=shutil.ignore_patterns("__pycache__"))
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release"], check=True)
    subprocess.run([*git, "tag", "-a", "v7.8.9", "-m", "release"], check=True)
    code = "from k3smig_lib.runbook.version import code_version; print(code_version())"

    def recorded() -> str:
        out = subprocess.run([sys.executable, "-c", code], cwd=checkout, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip()

    def head() -> str:
        return subprocess.run([*git, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()

    tagged = head()
    assert recorded() == f"k3smig 7.8.9 ({tagged})"
    (checkout / "k3smig_lib" / "py.typed").write_text("changed\n")
    assert recorded() == f"k3smig 7.8.9 ({tagged}, with uncommitted changes)"
    subprocess.run([*git, "commit", "-qam", "past the tag"], check=True)
    assert head() != tagged and recorded() == f"k3smig 7.8.9 +1 commits ({head()})"
