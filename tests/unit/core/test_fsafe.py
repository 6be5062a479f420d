"""The one writer every file goes through: confined to its root, atomic, with leftovers cleaned up."""

import os
import subprocess
import sys
import textwrap

import pytest

from k3smig_lib.core.fsafe import (
    atomic_write,
    atomic_writer,
    confined_path,
    ensure_dir,
    leftover_pid,
    remove_leftovers,
)
from k3smig_lib.errors import K3sMigError, UnsafePathError, WriteError


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_writes_create_folders_and_replace_content(tmp_path):
    path = atomic_write(tmp_path / "root", "manifests/ns/a.yaml", "one\n")
    assert path == (tmp_path / "root" / "manifests" / "ns" / "a.yaml") and path.read_text() == "one\n"
    atomic_write(tmp_path / "root", "manifests/ns/a.yaml", b"two\n", mode=0o600)
    assert path.read_bytes() == b"two\n" and (path.stat().st_mode & 0o777) == 0o600
    assert sorted(os.listdir(path.parent)) == ["a.yaml"]  # no temporary file left


@pytest.mark.parametrize("rel", ["../outside.yaml", "a/../../outside.yaml", "/etc/outside.yaml", "a//b.yaml",
                                 "./a.yaml", "", "a/\nb.yaml", "x" * 256 + ".yaml"])
def test_paths_that_leave_the_root_or_are_not_plain_are_refused(tmp_path, rel):
    root = tmp_path / "root"
    with pytest.raises(UnsafePathError) as err:
        atomic_write(root, rel, "data")
    assert "to fix this" in str(err.value)
    assert not (tmp_path / "outside.yaml").exists()
    assert isinstance(err.value, K3sMigError)


def test_a_symlinked_folder_on_the_way_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "ns").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        atomic_write(root, "manifests/ns/cm.yaml", "x")
    with pytest.raises(UnsafePathError, match="symlink"):
        confined_path(root, "manifests", "ns", "cm.yaml")
    with pytest.raises(UnsafePathError, match="symlink"):
        ensure_dir(root, "manifests/ns/sub")
    assert list(outside.iterdir()) == []


def test_a_symlink_in_place_of_the_file_is_refused_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.yaml").symlink_to(victim)
    with pytest.raises(UnsafePathError):
        atomic_write(root, "a.yaml", "x")
    assert victim.read_text() == "mine"


def test_a_folder_where_the_file_goes_is_named(tmp_path):
    (tmp_path / "a.yaml").mkdir()
    with pytest.raises(WriteError, match="a folder of that name exists"):
        atomic_write(tmp_path, "a.yaml", "x")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    """A file size limit makes the write fail for real (EFBIG) after part of the data went to disk."""
    target = tmp_path / "root" / "big.yaml"
    atomic_write(tmp_path / "root", "big.yaml", "old content\n")
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from k3smig_lib.core.fsafe import atomic_write
        from k3smig_lib.errors import WriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            atomic_write({str(tmp_path / "root")!r}, "big.yaml", "x" * 100_000)
        except WriteError as e:
            print(e)
            sys.exit(7)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 7, proc.stderr
    assert "cannot write" in proc.stdout and "previous content" in proc.stdout
    assert target.read_text() == "old content\n"
    assert sorted(os.listdir(target.parent)) == ["big.yaml"]


def test_an_error_inside_the_streaming_writer_keeps_the_old_file(tmp_path):
    atomic_write(tmp_path, "a.csv", "old")
    with pytest.raises(RuntimeError):
        with atomic_writer(tmp_path, "a.csv") as fh:
            fh.write(b"half")
            raise RuntimeError("producer failed")
    assert (tmp_path / "a.csv").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]


def test_leftovers_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    gone = dead_pid()
    (tmp_path / "manifests").mkdir()
    stale_tmp = tmp_path / "manifests" / f".k3smig-tmp-{gone}-0a0b0c0d"
    stale_tmp.write_text("half")
    stale_staging = tmp_path / "volumes" / "ns" / f".data.k3smig-staging-{gone}-abcd"
    (stale_staging / "deep").mkdir(parents=True)
    live = tmp_path / "manifests" / f".k3smig-tmp-{os.getpid()}-0a0b0c0d"
    live.write_text("being written")
    user = tmp_path / "volumes" / "ns" / "data" / "k3smig-tmp-notours"
    user.parent.mkdir(parents=True)
    user.write_text("user data")
    removed = remove_leftovers(tmp_path)
    assert sorted(removed) == sorted([stale_tmp, stale_staging])
    assert live.exists() and user.exists() and not stale_staging.exists()
    assert leftover_pid(live.name) == os.getpid()
