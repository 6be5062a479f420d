"""After ``start()``, a phase's cells give the same tables in any order (each asks for the work it needs).

Two runs of the ten phases on the demo's own path (parameters/demo.yaml, the bundled example, a folder
target): one with every notebook's cells in their order, one with the cells of the phases that hold
state between cells in reverse order (a verdict before the checks, a release before the copy, a
go/no-go before its checks). Every table, and every phase result, must be the same.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import k3smig_lib as k3smig
from k3smig_lib.core.config import Settings, read_parameters_file
from k3smig_lib.core.secrets import RUN_KEY_ENV
from k3smig_lib.phases.catalog import PHASES

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "parameters" / "demo.yaml"
#: Phases whose cells share state through the phase object (the ones this test runs out of order).
STATEFUL = ("00_preflight", "10_provision_infrastructure", "50_migrate_secrets", "60_deploy_applications",
            "70_migrate_data", "80_configure_network", "90_validate_migration")
#: Columns that differ between two runs for reasons other than cell order.
VOLATILE = {"free"}  # free space where the target volume lives: the other run's data changed it
#: Phase-result fields that differ between two runs for reasons other than cell order.
VOLATILE_RESULT = {"started", "finished", "seconds"}


def notebook_cells(phase: str) -> tuple[tuple[str, str], list[str]]:
    """The notebook's ``start`` call (module, function) and its ``phase.<step>()`` cells, in order."""
    nb = json.loads((ROOT / "notebooks" / f"{phase}.ipynb").read_text())
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    start = next(m.groups() for c in code if (m := re.fullmatch(r"phase = k3smig\.(\w+)\.(\w+)\(cfg\)", c)))
    steps = [m.group(1) for c in code if (m := re.fullmatch(r"phase\.(\w+)\(\)", c)) and m.group(1) != "finish"]
    return (start[0], start[1]), steps


def settings(root: Path) -> Settings:
    return Settings(**{**read_parameters_file(DEMO), "run_dir": str(root / "run"), "target_dir": str(root / "target")})


def comparable(value: Any, root: Path) -> Any:
    """A step's output with this run's folder named ``<root>`` (tables) or its type (charts)."""
    if isinstance(value, pd.DataFrame):
        frame = value.drop(columns=[c for c in value.columns if c in VOLATILE])
        return frame.map(lambda v: v.replace(str(root), "<root>") if isinstance(v, str) else v)
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    return type(value).__name__


def run_all(root: Path, reverse: tuple[str, ...]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every phase on the demo path; the cells of ``reverse`` phases last to first. Tables and results."""
    cfg = settings(root)
    tables: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, Any]] = {}
    for phase in PHASES:
        (module, function), steps = notebook_cells(phase)
        run = getattr(getattr(k3smig, module), function)(cfg)
        order = steps[::-1] if phase in reverse else steps
        tables[phase] = {name: comparable(getattr(run, name)(), root) for name in order}
        run.finish()
        result = json.loads((run.dir / "phase_result.json").read_text())
        results[phase] = json.loads(json.dumps({k: v for k, v in result.items() if k not in VOLATILE_RESULT})
                                    .replace(str(root), "<root>"))
    return tables, results


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:  # one fingerprint key for both runs, as `k3smig run` gives a run
        env.setenv(RUN_KEY_ENV, "ab" * 32)
        in_order = run_all(tmp_path_factory.mktemp("in-order"), reverse=())
        reversed_ = run_all(tmp_path_factory.mktemp("reversed"), reverse=STATEFUL)
    return in_order, reversed_


def test_the_reversed_run_is_a_real_run_with_a_pass_verdict(two_runs):
    (_, results), (tables, reversed_results) = two_runs
    assert reversed_results["90_validate_migration"]["summary"]["verdict"].startswith("PASS")
    assert results["90_validate_migration"]["summary"]["verdict"].startswith("PASS")
    verified = reversed_results["70_migrate_data"]["summary"]["volumes verified"]
    assert verified == 5 and set(tables["70_migrate_data"]["release"]["released"]) == {"PASS"}


@pytest.mark.parametrize("phase", STATEFUL)
def test_every_table_is_the_same_in_reverse_cell_order(two_runs, phase):
    (tables, _), (reversed_tables, _) = two_runs
    assert list(tables[phase]) == list(reversed_tables[phase])[::-1]
    for step, table in tables[phase].items():
        other = reversed_tables[phase][step]
        if isinstance(table, pd.DataFrame):
            pd.testing.assert_frame_equal(table, other, obj=f"{phase} {step}()")
        else:
            assert table == other, f"{phase} {step}()"


@pytest.mark.parametrize("phase", STATEFUL)
def test_every_phase_result_is_the_same_in_reverse_cell_order(two_runs, phase):
    (_, results), (_, reversed_results) = two_runs
    ours, theirs = results[phase], reversed_results[phase]
    for kind in ("errors", "warnings", "notes", "degraded"):  # each finding still names the cell that found it
        assert sorted(zip(ours[kind], ours["where"][kind], strict=True)) == sorted(
            zip(theirs[kind], theirs["where"][kind], strict=True)), kind
    rest = {"errors", "warnings", "notes", "degraded", "where"}
    assert {k: v for k, v in ours.items() if k not in rest} == {k: v for k, v in theirs.items() if k not in rest}
