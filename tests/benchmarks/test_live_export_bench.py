"""Live export + clean at scale against ``kubectl get <same kinds> -A -o yaml`` on the same API server (issue 12).

A sandbox of its own is started and seeded with the scale generator's 10,000 objects
(``K3SMIG_BENCH_OBJECTS``; :func:`~k3smig_lib.sandbox.scaleseed.seed_scale`). Then, each in its own
process (wall time and that process's peak RSS, ``wait4``):

- ``kubectl get <every kind the live source exports> -A -o yaml > FILE`` (kubectl lists in chunks of 500);
- ``k3smig clean --context k3smig-source OUT``: list page by page (500), spool, clean, write the tree;
- the same with ``--snapshot DIR`` (the raw export saved as a snapshot folder on the way).

The goal of the issue is live export + clean ≤ 1.0× kubectl. Figures go to stdout and to
``$K3SMIG_BENCH_OUT/live_export.json`` (default ``.cache/bench``), with the load average before and
after (2 shared cores: upper bounds). Nothing asserts on time or memory; every command must succeed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.backends.live_source import LiveSource
from k3smig_lib.k8s.client import ClusterRef
from k3smig_lib.sandbox import SandboxStatus, default_bin_dir, ensure_binaries, running
from k3smig_lib.sandbox.scaleseed import seed_scale

pytestmark = pytest.mark.benchmark  # deselected by default (addopts: -m "not benchmark")

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = int(os.environ.get("K3SMIG_BENCH_OBJECTS", "10000"))
RUNS = int(os.environ.get("K3SMIG_BENCH_RUNS", "1"))
OUT = Path(os.environ.get("K3SMIG_BENCH_OUT", str(ROOT / ".cache" / "bench")))
K3SMIG = str(Path(sys.executable).parent / "k3smig")

sys.path.insert(0, str(ROOT / "tests" / "support"))
from rssmeasure import measure  # noqa: E402


@pytest.fixture(scope="module")
def bench_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxStatus]:
    with running(tmp_path_factory.mktemp("bench-sandbox") / "state", ensure_binaries()) as st:
        yield st


def test_live_export_clean_against_kubectl(bench_sandbox: SandboxStatus, tmp_path: Path) -> None:
    kubeconfig, context = str(bench_sandbox.kubeconfig), bench_sandbox.contexts["source"]
    load = os.getloadavg()[0]
    seeded = seed_scale(bench_sandbox.kubeconfig, context, OBJECTS)
    for rid, why in sorted(seeded.failed.items()):
        print(f"seeding refused {rid}: {why}")
    assert len(seeded.failed) <= OBJECTS // 1000  # a figure, not a check of the seeding (the integration test's)
    kinds = ",".join(r.full_name for r in LiveSource(ClusterRef(kubeconfig, context, "source")).exported_resources())
    kubectl = str(default_bin_dir() / "kubectl")
    results: dict[str, Any] = {"objects": OBJECTS, "seeded": seeded.created + seeded.existing,
                               "seed_seconds": round(seeded.seconds, 1), "load": load, "runs": []}
    for run in range(RUNS):
        yaml_file = tmp_path / f"kubectl-{run}.yaml"
        row = {"kubectl": measure([kubectl, "--kubeconfig", kubeconfig, "--context", context, "get", kinds, "-A",
                                   "-o", "yaml"], yaml_file),
               "clean": measure([K3SMIG, "clean", "--context", context, "--kubeconfig", kubeconfig,
                                 str(tmp_path / f"out-{run}")], tmp_path / f"clean-{run}.txt"),
               "clean_snapshot": measure([K3SMIG, "clean", "--context", context, "--kubeconfig", kubeconfig,
                                          "--snapshot", str(tmp_path / f"snap-{run}"), str(tmp_path / f"snout-{run}")],
                                         tmp_path / f"snap-{run}.txt")}
        row["listed"] = int((tmp_path / f"clean-{run}.txt").read_text().split()[0])
        row["kubectl_mb"] = round(yaml_file.stat().st_size / 1e6, 1)
        for key in ("kubectl", "clean", "clean_snapshot"):
            row[key]["objects_per_s"] = round(row["listed"] / row[key]["seconds"])
        row["ratio"] = round(row["clean"]["seconds"] / row["kubectl"]["seconds"], 2)
        row["ratio_snapshot"] = round(row["clean_snapshot"]["seconds"] / row["kubectl"]["seconds"], 2)
        results["runs"].append(row)
    results["load_after"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "live_export.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nseeded {results['seeded']} of {OBJECTS} objects in {results['seed_seconds']} s; "
          f"load average {load:.2f} → {results['load_after']:.2f} (2 shared cores: upper bounds)")
    for row in results["runs"]:
        print(f"{row['listed']} objects listed; kubectl -o yaml {row['kubectl_mb']} MB")
        for key in ("kubectl", "clean", "clean_snapshot"):
            r = row[key]
            print(f"  {key:<15} {r['seconds']:>7} s {r['objects_per_s']:>6} obj/s  peak RSS {r['peak_rss_mb']} MB")
        print(f"  clean / kubectl = {row['ratio']}, with --snapshot {row['ratio_snapshot']}")
    print(f"figures: {OUT / 'live_export.json'}")
