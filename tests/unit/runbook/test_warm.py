"""What a phase's kernel preloads, and what it must not have to import."""

import subprocess
import sys

from k3smig_lib.phases.catalog import PHASES
from k3smig_lib.runbook.warm import preload_for


def test_every_phase_preloads_the_modules_its_notebook_imports():
    for phase in PHASES:
        modules = preload_for(phase).split(",")
        assert modules[:2] == ["k3smig_lib", "k3smig_lib.show"]
        assert len(modules) == 3 and modules[2].startswith("k3smig_lib.phases."), phase


def test_a_snapshot_to_folder_run_never_imports_the_kubernetes_client():
    # kubernetes pulls ~1,000 modules and, through kubernetes_validate, jsonschema's format checkers:
    # seconds per kernel; phases reach it only when a source or target is a live cluster
    modules = sorted({m for p in PHASES for m in preload_for(p).split(",")})
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "import k3smig_lib.runbook.runner\n"
            "print(sorted(m for m in ('kubernetes', 'kubernetes_validate') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
