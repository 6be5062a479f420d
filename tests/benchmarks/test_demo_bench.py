"""``k3smig demo`` wall time, split by phase into kernel wait, execution and HTML export.

Runs the demo ``K3SMIG_BENCH_DEMO_RUNS`` times (default 3) in empty folders, each as its own process,
and prints the wall time of each run, their median, the load average before and after, and the
per-phase ``timing`` the runner records in ``run.json``. Figures go to ``$K3SMIG_BENCH_OUT`` (default
``.cache/bench``) as ``demo.json``. Nothing here asserts on time: only that every run completed with
a PASS verdict and recorded the split for every phase.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark  # deselected by default (addopts: -m "not benchmark")

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("K3SMIG_BENCH_DEMO_RUNS", "3"))
OUT = Path(os.environ.get("K3SMIG_BENCH_OUT", str(ROOT / ".cache" / "bench")))
K3SMIG = str(Path(sys.executable).parent / "k3smig")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def test_demo_wall_time_split_by_phase(tmp_path):
    runs = []
    for n in range(RUNS):
        folder = tmp_path / f"run{n}"
        folder.mkdir()
        load_before, t0 = _load(), time.monotonic()
        proc = subprocess.run([K3SMIG, "demo"], cwd=folder, capture_output=True, text=True, check=False)
        wall = time.monotonic() - t0
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        ledger = json.loads(next((folder / "runs").glob("*/run.json")).read_text())
        assert ledger["verdict"] == "PASS"
        phases = {r["phase"]: {"seconds": r["seconds"], **r["timing"]} for r in ledger["phases"]}
        assert all(set(t) >= {"kernel_start", "execute", "html"} for t in phases.values())
        runs.append({"wall": round(wall, 1), "load_before": load_before, "load_after": _load(), "phases": phases})
    median = statistics.median(r["wall"] for r in runs)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "demo.json").write_text(json.dumps({"runs": runs, "median_wall": median}, indent=2) + "\n")
    print(f"\nk3smig demo: {[r['wall'] for r in runs]} s, median {median} s")
    for r in runs:
        print(f"  load {r['load_before']} -> {r['load_after']}")
        for phase, t in r["phases"].items():
            print(f"    {phase:32} {t['seconds']:7.2f} s  kernel {t['kernel_start']:6.2f}  "
                  f"execute {t['execute']:6.2f}  html {t['html']:5.2f}")
