"""Throughput of the leak gate: MB/s for 300 and 3,000 secret values over base64 notebook-like files.

The unit test (tests/unit/core/test_leakgate.py) checks the work is bounded by counting candidates; the
seconds are measured here, printed, never asserted (a flaky benchmark is a bug). ``K3SMIG_BENCH_MB``
sets the size (default 50 MB, the size the unit test used to time). Run with
``pytest -m benchmark tests/benchmarks/test_leakgate_bench.py -s``.
"""

from __future__ import annotations

import base64
import os
import random
import time
from pathlib import Path

import pytest

from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.secrets import Fingerprinter

pytestmark = pytest.mark.benchmark  # deselected by default (addopts: -m "not benchmark")

SIZE_MB = int(os.environ.get("K3SMIG_BENCH_MB", "50"))


@pytest.mark.parametrize("count", [300, 3000])
def test_leak_gate_throughput(tmp_path: Path, count: int) -> None:
    rng = random.Random(3)
    values = [rng.randbytes(rng.randint(6, 40)).hex().encode() for _ in range(count)]
    files = 5
    raw = SIZE_MB * 1_000_000 * 3 // 4 // files  # base64 makes 4 bytes of 3
    for n in range(files):
        (tmp_path / f"{n}.ipynb").write_bytes(base64.b64encode(rng.randbytes(raw)))
    start = time.perf_counter()
    report = scan(tmp_path, values, fingerprinter=Fingerprinter(b"r" * 32))
    seconds = time.perf_counter() - start
    load = os.getloadavg()[0]
    print(f"\nleak gate: {report.bytes_scanned / 1e6:.0f} MB, {count} values: {seconds:.2f} s, "
          f"{report.bytes_scanned / 1e6 / seconds:.0f} MB/s (load average {load:.1f})")
    assert report.ok and report.values_checked == count and report.bytes_scanned == files * len(
        base64.b64encode(b"\0" * raw))
