"""Shared fixtures of the core unit tests: the clean-rule fixtures cleaned once for every clean test."""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from k3smig_lib.core.clean import CleanReport, clean_objects

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from cleanfixtures import load_all  # noqa: E402


@pytest.fixture(scope="session")
def clean_report() -> Iterator[CleanReport]:
    """Every ``clean-*.yaml`` fixture cleaned with the default options, shared by the clean tests.

    Read only: a test that changed it would change what the others see, so the report is compared with a
    copy taken before the first test when the session ends.
    """
    report = clean_objects(load_all())
    before = copy.deepcopy(report)
    yield report
    assert report == before, "a test modified the shared clean_report: copy what you change"
