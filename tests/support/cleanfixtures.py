"""The clean-rule fixtures (tests/fixtures/k8s/clean-*.yaml) and the helpers every clean test used to copy.

Import with ``sys.path.insert(0, <tests/support>)`` as the other support modules; the cleaned report of all
fixtures with default options is the ``clean_report`` fixture of tests/unit/core/conftest.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from k3smig_lib.core.clean import CleanReport

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "k8s"
OPENSHIFT = FIXTURES.parent / "openshift"
CLEAN_FILES = tuple(sorted(p.name for p in FIXTURES.glob("clean-*.yaml")))


def read_docs(path: Path) -> list[dict[str, Any]]:
    """The non-empty documents of one YAML file."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def load(*names: str) -> list[dict[str, Any]]:
    """The objects of the named fixture files (under tests/fixtures/k8s), in order."""
    objects: list[dict[str, Any]] = []
    for name in names:
        objects += read_docs(FIXTURES / name)
    return objects


def load_all(*, openshift: bool = False) -> list[dict[str, Any]]:
    """Every ``clean-*.yaml`` fixture, sorted by file name; with ``openshift`` the OpenShift ones after them."""
    objects = load(*CLEAN_FILES)
    if openshift:
        for path in sorted(OPENSHIFT.glob("*.yaml")):
            objects += read_docs(path)
    return objects


def cleaned(report: CleanReport, object_id: str) -> dict[str, Any]:
    """The cleaned object ``Kind/namespace/name`` of a report; fails if it was dropped."""
    obj = report.get(object_id).cleaned
    assert obj is not None, f"{object_id} was dropped"
    return obj
