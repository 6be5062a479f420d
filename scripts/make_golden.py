"""Regenerate the golden executed notebooks in tests/golden (run: make golden, then review the diff).

The golden copies are the demo notebooks executed on the bundled example with fixed relative paths,
checked later by ``pytest --nbval tests/golden`` with ``tests/golden/sanitize.cfg``. Cells whose output
depends on the machine (tool versions, credentials present) are marked
``NBVAL_IGNORE_OUTPUT``; everything else is compared, so a change in a report shows up as a diff.
"""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(ROOT))

from k3smig_lib.backends.snapshot import read_export  # noqa: E402
from k3smig_lib.core.config import BUNDLED_EXAMPLE  # noqa: E402
from k3smig_lib.core.leakgate import scan  # noqa: E402
from k3smig_lib.core.secrets import secret_values  # noqa: E402
from k3smig_lib.phases.catalog import PHASES  # noqa: E402

#: ``as_of`` pins the time certificates are judged at to the example's export time (as parameters/demo.yaml does),
#: so the certificate table is compared like any other report.
PARAMS = {"environment": "golden", "apply": True, "age_recipient": "auto", "run_dir": "runs/golden",
          "target_dir": "targets/golden", "as_of": "2025-01-20T10:00:00Z"}
IGNORE = ("phase.tools()", "phase.credentials()", "phase.endpoints()")
#: Cells of one phase only whose output depends on the machine: (phase, cell source).
IGNORE_IN = {("70_migrate_data", "phase.capacity()")}  # the free bytes of this machine's disk


def sanitizers() -> list[tuple[re.Pattern[str], str]]:
    """The regex/replace pairs of tests/golden/sanitize.cfg (the same ones nbval applies)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(GOLDEN / "sanitize.cfg")
    return [(re.compile(parser[s]["regex"]), parser[s]["replace"]) for s in parser.sections()
            if not s.startswith("compare-only")]


def _clean_text(value: object, subs: list[tuple[re.Pattern[str], str]]) -> object:
    if isinstance(value, list):
        return [_clean_text(v, subs) for v in value]
    if isinstance(value, str):
        for pattern, repl in subs:
            value = pattern.sub(repl, value)
    return value


def stabilise(nb: nbformat.NotebookNode) -> None:
    """Drop timings and apply the sanitizers, so a regenerated golden differs only where a report changed."""
    subs = sanitizers()
    nb.metadata.get("papermill", {}).pop("start_time", None)
    for key in ("end_time", "duration", "start_time", "input_path", "output_path"):
        nb.metadata.get("papermill", {}).pop(key, None)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell["id"] = "injected-parameters"  # papermill gives it a random id
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        for out in cell.get("outputs", []):
            if "text" in out:
                out["text"] = _clean_text(out["text"], subs)
            for mime in ("text/plain", "text/html", "text/markdown"):
                if mime in out.get("data", {}):
                    out["data"][mime] = _clean_text(out["data"][mime], subs)


def golden_run_key() -> str:
    """The public fingerprint key of the golden runs, from tests/golden/conftest.py (one place for both)."""
    spec = importlib.util.spec_from_file_location("golden_conftest", GOLDEN / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.GOLDEN_RUN_KEY)


def reset() -> None:
    """Remove the golden run and target folders (nbval re-creates them)."""
    for name in ("runs", "targets"):
        shutil.rmtree(GOLDEN / name, ignore_errors=True)


def main() -> None:
    """Execute every phase notebook into tests/golden."""
    reset()
    os.environ["K3SMIG_BATCH"] = "1"
    # the golden run's age identity is throwaway: keep it out of the user's config folder
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="k3smig-golden-config-")
    os.environ["K3SMIG_RUN_KEY"] = golden_run_key()  # the key nbval's kernels get (tests/golden/conftest.py)
    for phase in PHASES:
        declared = papermill.inspect_notebook(str(ROOT / "notebooks" / f"{phase}.ipynb"))
        params = {k: v for k, v in PARAMS.items() if k in declared}
        out = GOLDEN / f"{phase}.ipynb"
        papermill.execute_notebook(str(ROOT / "notebooks" / f"{phase}.ipynb"), str(out), parameters=params,
                                   kernel_name="python3", progress_bar=False, cwd=str(GOLDEN))
        nb = nbformat.read(str(out), as_version=4)
        stabilise(nb)
        for cell in nb.cells:
            if cell.cell_type == "code" and (cell.source.strip() in IGNORE
                                             or (phase, cell.source.strip()) in IGNORE_IN):
                cell.source = "# NBVAL_IGNORE_OUTPUT\n" + cell.source
        nbformat.write(nb, str(out))
        print(f"golden: {out.relative_to(ROOT)}")
    values = secret_values(read_export(BUNDLED_EXAMPLE))
    report = scan(GOLDEN, values, exclude=[GOLDEN / "targets"])
    if not report.ok:
        raise SystemExit(f"leak gate: secret values in golden files: {sorted({h.file for h in report.hits})}")
    reset()


if __name__ == "__main__":
    main()
