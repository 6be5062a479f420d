"""Throughput of the data-phase proofs against the raw tools they sit on top of.

Generates a ~200 MB tree (``K3SMIG_BENCH_MB`` to change it): large incompressible files plus many
small ones, archives it with GNU tar, then times

- ``manifest_from_tar`` (stream, hash every member, write nothing) vs ``sha256sum`` over the tree,
- ``manifest_from_dir`` (lstat walk + sha256) vs ``sha256sum``,
- ``safe_extract`` (pre-scan + checked extraction + rename) vs a raw ``cat archive | tar -x`` pipe,

and prints MB/s for each. The page cache is warm for every run (the archive is read once first), so
the figures compare CPU cost, not disk speed. Run with ``pytest -m benchmark tests/benchmarks -s``.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from k3smig_lib.core.manifest import compare, manifest_from_dir, manifest_from_tar
from k3smig_lib.core.tarsafe import safe_extract

pytestmark = pytest.mark.benchmark  # deselected by default (addopts: -m "not benchmark")

SIZE_MB = int(os.environ.get("K3SMIG_BENCH_MB", "200"))


def _generate(root: Path, size_mb: int) -> int:
    """3/4 of the bytes in 1 MiB files, 1/4 in 8 KiB files spread over 50 directories."""
    root.mkdir()
    big = size_mb * 3 // 4
    for i in range(big):
        (root / f"blob-{i:04d}.bin").write_bytes(os.urandom(1 << 20))
    small = (size_mb - big) * 128
    for i in range(small):
        d = root / f"dir-{i % 50:02d}"
        d.mkdir(exist_ok=True)
        (d / f"f-{i:06d}.dat").write_bytes(os.urandom(8 << 10))
    return big * (1 << 20) + small * (8 << 10)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _sh(cmd: str) -> None:
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)


def test_manifest_and_extraction_throughput_against_raw_tar_and_sha256sum(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    nbytes = _generate(tree, SIZE_MB)
    archive = tmp_path / "vol.tar"
    _sh(f"tar --numeric-owner -C {tree} -cpf {archive} .")
    _sh(f"cat {archive} > /dev/null")  # warm the page cache
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()

    timings = {
        "sha256sum": _timed(lambda: _sh(f"find {tree} -type f -print0 | xargs -0 sha256sum"))[0],
        "tar -x pipe": _timed(lambda: _sh(f"cat {archive} | tar --numeric-owner -xpf - -C {raw_dir}"))[0],
    }
    timings["manifest_from_tar"], streamed = _timed(lambda: manifest_from_tar(archive))
    timings["manifest_from_dir"], walked = _timed(lambda: manifest_from_dir(tree))
    timings["safe_extract"], report = _timed(lambda: safe_extract(archive, tmp_path / "restored"))

    mb = nbytes / 1e6
    size = archive.stat().st_size / 1e6
    print(f"\n{mb:.0f} MB in {walked.totals['entries']} entries, archive {size:.0f} MB")
    for name, seconds in timings.items():
        print(f"  {name:<26} {seconds:7.2f} s  {mb / seconds:8.1f} MB/s")
    assert compare(walked, streamed).equal
    assert report.bytes == nbytes == walked.totals["bytes"]
