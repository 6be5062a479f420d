"""``k3smig clean`` at scale against the floor of any YAML tool: libyaml's C loader reading the same file.

For each layout of the scale export (one ``kind: List`` as ``kubectl get -o yaml`` prints it,
multi-document YAML, a JSON List as ``-o json`` prints it), 10,000 objects (``K3SMIG_BENCH_OBJECTS``):

- ``yaml.load_all(file, Loader=CSafeLoader)`` alone (nothing else done with the objects), and for
  JSON also ``json.load``;
- ``k3smig clean --max-file-mib 4096 EXPORT OUT`` (read, clean, write the tree and both reports).

Each command runs in its own process: wall time and that process's peak RSS (``wait4``). Then peak RSS
of ``k3smig clean`` on the List at 1,000 / 10,000 / 50,000 objects (``K3SMIG_BENCH_SCALES``), which
must stay flat. Figures go to stdout and to ``$K3SMIG_BENCH_OUT`` (default ``.cache/bench``) as
``clean.json`` and ``clean.png``. On a shared machine they are upper bounds: ``uptime`` is recorded.
Nothing here asserts on time or memory; the run checks only that every command succeeded.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.sandbox.scale import SUFFIX, write_scale_export

pytestmark = pytest.mark.benchmark  # deselected by default (addopts: -m "not benchmark")

ROOT = Path(__file__).resolve().parents[2]
OBJECTS = int(os.environ.get("K3SMIG_BENCH_OBJECTS", "10000"))
SCALES = [int(n) for n in os.environ.get("K3SMIG_BENCH_SCALES", "1000,10000,50000").split(",")]
OUT = Path(os.environ.get("K3SMIG_BENCH_OUT", str(ROOT / ".cache" / "bench")))
K3SMIG = str(Path(sys.executable).parent / "k3smig")
C_LOAD = ("import sys, yaml\n"
          "with open(sys.argv[1], 'rb') as fh:\n"
          "    n = sum(1 for _ in yaml.load_all(fh, Loader=yaml.CSafeLoader))\n")
JSON_LOAD = "import json, sys\nwith open(sys.argv[1], 'rb') as fh:\n    json.load(fh)\n"


sys.path.insert(0, str(ROOT / "tests" / "support"))
from rssmeasure import measure  # noqa: E402


def export(count: int, layout: str) -> Path:
    """The scale export of ``count`` objects in ``layout``, generated once and kept under ``OUT``."""
    folder = OUT / "exports" / f"{layout}-{count}"
    path = folder / f"export{SUFFIX[layout]}"  # type: ignore[index]
    if not path.is_file():
        partial = path.with_name(path.name + ".partial")
        write_scale_export(partial, count, layout)  # type: ignore[arg-type]
        partial.rename(path)
    return path


def clean(path: Path, tmp: Path) -> dict[str, float]:
    out = tmp / f"out-{path.parent.name}"
    return measure([K3SMIG, "clean", "--max-file-mib", "4096", str(path.parent), str(out)])


def plot(results: dict[str, Any], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 4))
    layouts = list(results["layouts"])
    width = 0.38
    for offset, (label, key) in enumerate((("C loader alone", "c_loader"), ("k3smig clean", "clean"))):
        xs = [i + (offset - 0.5) * width for i in range(len(layouts))]
        speed.bar(xs, [results["layouts"][lay][key]["objects_per_s"] for lay in layouts], width, label=label)
        memory.bar(xs, [results["layouts"][lay][key]["peak_rss_mb"] for lay in layouts], width, label=label)
    for axis, title in ((speed, f"objects/s, {OBJECTS} objects (higher is better)"),
                        (memory, "peak RSS, MB (lower is better)")):
        axis.set_xticks(range(len(layouts)), layouts)
        axis.set_title(title, fontsize=10)
        axis.legend(fontsize=8)
    scales = results["scales"]
    inset = memory.inset_axes([0.62, 0.45, 0.35, 0.35])
    inset.plot([s["objects"] for s in scales], [s["peak_rss_mb"] for s in scales], marker="o")
    inset.set_xscale("log")
    inset.set_title("clean, List: RSS vs objects", fontsize=7)
    inset.tick_params(labelsize=6)
    fig.suptitle(f"k3smig clean vs libyaml's C loader (load {results['load']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(target, dpi=110)


def test_clean_at_scale_against_the_c_loader(tmp_path: Path) -> None:
    results: dict[str, Any] = {"objects": OBJECTS, "load": round(os.getloadavg()[0], 2), "layouts": {}, "scales": []}
    for layout in ("list", "multidoc", "json"):
        path = export(OBJECTS, layout)
        row = {"mb": round(path.stat().st_size / 1e6, 1),
               "c_loader": measure([sys.executable, "-c", C_LOAD, str(path)]), "clean": clean(path, tmp_path)}
        if layout == "json":
            row["json_load"] = measure([sys.executable, "-c", JSON_LOAD, str(path)])
        for key in ("c_loader", "clean", "json_load"):
            if key in row:
                row[key]["objects_per_s"] = round(OBJECTS / row[key]["seconds"])
        row["ratio"] = round(row["clean"]["seconds"] / row["c_loader"]["seconds"], 2)
        results["layouts"][layout] = row
    for count in SCALES:
        results["scales"].append({"objects": count, **clean(export(count, "list"), tmp_path / f"s{count}")})
    results["load_after"] = os.getloadavg()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "clean.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, OUT / "clean.png")
    print(f"\nload average {results['load']:.2f} → {results['load_after']:.2f} (2 shared cores: upper bounds)")
    print(f"{'layout':<9} {'MB':>6} {'C loader s':>11} {'obj/s':>7} {'RSS MB':>7} | {'clean s':>8} {'obj/s':>7} "
          f"{'RSS MB':>7} | clean/C")
    for layout, row in results["layouts"].items():
        c, k = row["c_loader"], row["clean"]
        print(f"{layout:<9} {row['mb']:>6} {c['seconds']:>11} {c['objects_per_s']:>7} {c['peak_rss_mb']:>7} | "
              f"{k['seconds']:>8} {k['objects_per_s']:>7} {k['peak_rss_mb']:>7} | {row['ratio']}")
    if "json_load" in results["layouts"]["json"]:
        j = results["layouts"]["json"]["json_load"]
        print(f"json.load alone: {j['seconds']} s, {j['peak_rss_mb']} MB")
    for scale in results["scales"]:
        print(f"clean, List of {scale['objects']:>6} objects: {scale['seconds']:>7} s, "
              f"peak RSS {scale['peak_rss_mb']} MB")
    print(f"figures: {OUT / 'clean.json'}, plot: {OUT / 'clean.png'}")
