"""The volume scripts run with a real sh, GNU find, tar and coreutils, and their output parsed back."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from k3smig_lib.core.manifest import compare, manifest_from_dir, manifest_from_tar
from k3smig_lib.core.volscripts import (
    MANIFEST,
    PROBE,
    create_script,
    nul_list,
    parse_manifest,
    parse_probe,
    parse_totals,
)
from k3smig_lib.errors import DataMismatchError


def run(folder: Path, script: str, stdin: bytes = b"") -> tuple[bytes, str]:
    proc = subprocess.run(["sh", "-c", script], input=stdin, capture_output=True, cwd="/",
                          env={**os.environ, "VOLUME_DIR": str(folder)})
    return proc.stdout, proc.stderr.decode()


@pytest.fixture()
def volume(tmp_path: Path) -> Path:
    v = tmp_path / "vol"
    (v / "sub").mkdir(parents=True)
    (v / "sub" / "f").write_text("content")
    (v / os.fsdecode(b"bad-\xff-name")).write_text("x")
    (v / "with\nnewline").write_text("y")
    os.link(v / "sub" / "f", v / "hard")
    os.symlink("/etc/shadow", v / "abs-link")
    os.mkfifo(v / "fifo")
    return v


def test_the_manifest_made_next_to_the_volume_equals_the_one_made_locally(volume):
    out, err = run(volume, MANIFEST)
    assert "__K3SMIG_RC=0" in err
    m = parse_manifest(out, "pod")
    assert compare(m, manifest_from_dir(volume)).equal
    assert m.entries["sub/f"].type == "h" and m.entries["sub/f"].link == "hard"  # the smallest path leads
    assert m.entries["fifo"].link == "fifo" and m.entries["abs-link"].link == "/etc/shadow"


def test_a_manifest_cut_inside_an_entry_is_refused(volume):
    out, _ = run(volume, MANIFEST)
    with pytest.raises(DataMismatchError):
        parse_manifest(out[: len(out) // 3], "pod")


def test_the_probe_reports_gnu_tar_and_free_space(volume):
    out, _ = run(volume, PROBE)
    probe = parse_probe(out)
    assert probe.gnu_tar and probe.uid == os.getuid() and probe.free_bytes > 0


def test_a_listed_stream_carries_exactly_the_listed_entries_and_tar_reports_its_bytes(volume):
    listing = nul_list(["sub", "with\nnewline", os.fsdecode(b"bad-\xff-name")])
    out, err = run(volume, create_script(len(listing)), listing)
    m = manifest_from_tar(__import__("io").BytesIO(out))
    assert sorted(m.entries) == sorted(["sub", "with\nnewline", os.fsdecode(b"bad-\xff-name")])
    assert parse_totals(err, "written") == len(out)


def test_an_empty_list_gives_an_empty_archive_with_its_end_marker(volume):
    out, err = run(volume, create_script(0))
    assert out and set(out) == {0} and "__K3SMIG_RC=0" in err
