"""Project hygiene that a fresh clone relies on: the licence, the changelog, the contributor guide."""

import tomllib
from pathlib import Path

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
