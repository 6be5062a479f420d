"""A cell that raises: the run keeps where (cell, source, traceback), shows it, and never the secret it quoted.

The notebook is executed by papermill through the runner, in a real kernel, like every phase.
"""

import json
import re

import nbformat
import pytest

from k3smig_lib.core.leakgate import scan
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.failure import Failure, bounded, failure_of, plain, redact_error_outputs
from k3smig_lib.runbook.leaks import Redactor
from k3smig_lib.runbook.ledger import PhaseRecord, verify
from k3smig_lib.runbook.rerender import rerender

pytestmark = pytest.mark.notebooks
PHASE = "30_inventory_source"
TOKEN = "glsa_k3smigTestToken_5f3a9c1e7b2d"
LABEL = "environment variable GRAFANA_TOKEN"
RAISING = (  # the credential is quoted by the chained cause only: in the traceback, not in the raised message
    "import os\n"
    "\n"
    "def check_token(token):\n"
    "    try:\n"
    "        raise PermissionError(f'token rejected by the registry: {token}')\n"
    "    except PermissionError as e:\n"
    "        raise RuntimeError('registry login failed') from e\n"
    "\n"
    "check_token(os.environ['GRAFANA_TOKEN'])"
)


def raising_notebook(path):
    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_markdown_cell("# 30 · A phase that raises"),
                nbformat.v4.new_code_cell("environment = 'demo'", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("print('inventory read')"),
                nbformat.v4.new_code_cell(RAISING),
                nbformat.v4.new_code_cell("print('never reached')")]
    nbformat.write(nb, str(path))
    return path


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("failure")
    params = {"environment": "ci", "apply": False, "target_dir": str(tmp / "target")}
    run = runner.Runner(params, tmp / "runs" / "20261207T000000Z-ci")
    run.notebooks[PHASE] = raising_notebook(tmp / "raising.ipynb")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAFANA_TOKEN", TOKEN)  # the kernel inherits it, the leak gate labels it
        outcome = run.run([PHASE])
    return outcome


def test_the_run_records_the_failing_cell_its_source_and_traceback(failed_run):
    run_dir = failed_run.run_dir
    assert (failed_run.status, failed_run.failed_phase) == ("Failed", PHASE)
    record = json.loads((run_dir / "run.json").read_text())["phases"][0]
    failure = record["failure"]
    executed = nbformat.read(str(run_dir / f"{PHASE}.ipynb"), as_version=4)
    cell = executed.cells[failure["cell"]]
    assert [o.output_type for o in cell.outputs] == ["error"]  # the cell index points at the raising cell
    assert failure["cell_id"] == cell.id and failure["execution_count"] == cell.execution_count
    assert failure["source"] == RAISING and failure["source_lines"] == len(RAISING.splitlines())
    assert (failure["ename"], failure["evalue"]) == ("RuntimeError", "registry login failed")
    assert "\x1b" not in failure["traceback"] and failure["cut"] == 0
    assert re.search(r"Cell In\[\d+\], line 9\n", failure["traceback"])  # the frame that called it
    assert "----> 7         raise RuntimeError" in failure["traceback"]
    assert f"PermissionError: token rejected by the registry: [secret value removed: {LABEL}]" in failure["traceback"]
    assert failure["traceback"].rstrip().endswith("RuntimeError: registry login failed")
    assert failure["redacted"] == [LABEL]
    # the one-line error stays as it was, beside the structure; the phase result holds the same failure
    assert record["errors"] == ["RuntimeError: registry login failed"]
    result = json.loads((run_dir / "artifacts" / PHASE / "phase_result.json").read_text())
    assert result["failure"] == failure and result["errors"] == record["errors"]
    assert PhaseRecord.from_json(record).to_json() == {k: v for k, v in record.items() if k not in ("prev", "hash")}


def test_the_phase_report_and_the_index_show_where_it_failed(failed_run):
    run_dir = failed_run.run_dir
    failure = Failure.from_json(json.loads((run_dir / "run.json").read_text())["phases"][0]["failure"])
    report = (run_dir / f"{PHASE}.html").read_text()
    head, _, body = report.partition("<main>")
    assert f"Failed at cell {failure.cell} (In [{failure.execution_count}])" in head
    assert f'href="#cell-id={failure.cell_id}"' in head and f'id="cell-id={failure.cell_id}"' in body
    assert "check_token(os.environ[&#x27;GRAFANA_TOKEN&#x27;])" in head  # the source the report otherwise hides
    assert "Traceback</summary>" in head and "----&gt; 9 check_token" in head
    assert f"Secret values removed from this error: {LABEL}" in head
    assert "<title>30 · A phase that raises · FAIL" in report  # papermill's banner does not hide the heading
    assert "papermill-error-cell" not in report
    index = (run_dir / "index.html").read_text()
    assert f"Failed at cell {failure.cell}" in index
    assert f'href="{PHASE}.html#cell-id={failure.cell_id}"' in index and "----&gt; 9 check_token" in index


def test_a_secret_quoted_by_the_exception_is_in_no_file_of_the_run(failed_run):
    run_dir = failed_run.run_dir
    assert run_dir.is_dir() and not run_dir.with_name(run_dir.name + ".quarantined").exists()
    for path in [run_dir / "run.json", *run_dir.glob("*.html"), *run_dir.glob("*.ipynb")]:
        assert TOKEN not in path.read_text(), path.name
    assert scan(run_dir, {TOKEN.encode(): LABEL}).hits == []  # and in no encoding, in no file
    executed = json.loads((run_dir / f"{PHASE}.ipynb").read_text())
    errors = [o for c in executed["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert any(f"[secret value removed: {LABEL}]" in line for line in errors[0]["traceback"])


def test_the_ledger_verifies_and_every_page_renders_again_from_the_run_files(failed_run):
    assert verify(failed_run.run_dir) == []
    assert rerender(failed_run.run_dir) == []


def _notebook_with_error(traceback, evalue="boom"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("\n".join(f"line_{i} = {i}" for i in range(40)), execution_count=3)
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue=evalue, traceback=traceback)]
    nb.cells = [nbformat.v4.new_code_cell("x = 1", execution_count=1), cell]
    return nb


def test_a_long_traceback_keeps_its_head_and_tail_and_says_how_much_was_cut():
    frames = [f"\x1b[32mframe {i:05d}\x1b[39m" + " " * 80 for i in range(500)]
    failure = failure_of(_notebook_with_error(frames, evalue="v" * 5000), "ValueError", "v" * 5000, Redactor({}))
    assert failure.cell == 1 and failure.execution_count == 3
    assert failure.source.endswith("line_14 = 14\n[… 25 more lines]") and failure.source_lines == 40
    text = failure.traceback
    assert text.startswith("frame 00000") and text.rstrip().endswith("frame 00499") and "\x1b" not in text
    whole = plain("\n".join(frames))
    assert failure.cut == len(whole) - 8000 and f"[… {failure.cut} characters (" in text
    assert len(failure.evalue) < 1100 and "characters (0 lines) cut" in failure.evalue


def test_a_kernel_that_dies_is_recorded_at_the_cell_it_was_running(tmp_path):
    """No error output to find: the cell is the last one papermill started."""
    nb = nbformat.read(str(raising_notebook(tmp_path / "dies.ipynb")), as_version=4)
    nb.cells[3].source = "import os\nos._exit(1)"
    nbformat.write(nb, str(tmp_path / "dies.ipynb"))
    run = runner.Runner({"environment": "ci", "apply": False, "target_dir": str(tmp_path / "target")},
                        tmp_path / "runs" / "20261207T000001Z-ci")
    run.notebooks[PHASE] = tmp_path / "dies.ipynb"
    outcome = run.run([PHASE])
    record = json.loads((outcome.run_dir / "run.json").read_text())["phases"][0]
    executed = nbformat.read(str(outcome.run_dir / f"{PHASE}.ipynb"), as_version=4)
    failure = record["failure"]
    assert record["errors"] == ["DeadKernelError: Kernel died"]
    assert (failure["ename"], failure["traceback"], failure["source"]) == ("DeadKernelError", "", nb.cells[3].source)
    assert executed.cells[failure["cell"]].id == failure["cell_id"] == nb.cells[3].id
    assert f"Failed at cell {failure['cell']}" in (outcome.run_dir / f"{PHASE}.html").read_text()  # In [n] if it began
    assert verify(outcome.run_dir) == []


def test_no_notebook_means_no_cell_and_a_clean_error_output_is_left_untouched():
    assert failure_of(None, "DeadKernelError", "Kernel died", Redactor({})).cell is None
    clean = _notebook_with_error(["no secret here"])
    assert redact_error_outputs(clean, Redactor({TOKEN.encode(): LABEL})) == []
    assert clean.cells[1].outputs[0].traceback == ["no secret here"]


def test_bounded_leaves_short_text_whole():
    assert bounded("short") == ("short", 0)
