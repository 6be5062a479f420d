"""The golden executed notebooks exist for every phase and carry no secret value."""

from pathlib import Path

from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.core.config import BUNDLED_EXAMPLE
from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.secrets import secret_values
from k3smig_lib.phases.catalog import PHASES

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def test_every_phase_has_a_golden_executed_notebook():
    assert sorted(p.stem for p in GOLDEN.glob("*.ipynb")) == list(PHASES)


def test_golden_notebooks_hold_no_secret_value():
    values = secret_values(read_export(BUNDLED_EXAMPLE))
    report = scan(GOLDEN, values, exclude=[GOLDEN / "targets", GOLDEN / "runs"])
    assert report.files_scanned >= 10 and report.ok, report.hits
