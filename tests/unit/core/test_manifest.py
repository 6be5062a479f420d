"""Manifests (rule 13, cases 9, 18, 21): equal trees compare equal, every kind of loss is caught.

The fidelity tree holds what breaks naive copies — relative and dangling symlinks, hard links, a
sparse file, zero-byte files, empty dirs, names with spaces, a newline and non-UTF-8 bytes, paths
over 255 bytes, numeric owners with 0600/0700 modes and a setgid dir — and is archived with the real
GNU tar (``--numeric-owner -S -cpf``), as the transfer pod does.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from k3smig_lib.core.manifest import Manifest, compare, manifest_from_dir, manifest_from_tar
from k3smig_lib.core.tarsafe import safe_extract
from k3smig_lib.errors import DataMismatchError, SourceError

LATIN1 = os.fsdecode(b"caf\xe9-latin1.txt")
LONG = "/".join(["x" * 100, "y" * 100, "z" * 100, "file-at-the-end-of-a-long-path.txt"])


def build_fidelity_tree(root: Path) -> Path:
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "plain.txt").write_text("hello\n")
    (root / "empty.bin").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "with space").mkdir()
    (root / "with space" / "file name.txt").write_text("spaces\n")
    (root / "new\nline.txt").write_text("newline in the name\n")
    (root / LATIN1).write_text("latin-1 name\n")
    (root / LONG).parent.mkdir(parents=True)
    (root / LONG).write_text("deep\n")
    (root / "links").mkdir()
    os.symlink("../plain.txt", root / "links" / "to-plain")
    os.symlink("nowhere/at/all", root / "links" / "dangling")
    os.symlink("../with space", root / "links" / "dir-link")
    (root / "hard").mkdir()
    (root / "hard" / "zz-original").write_bytes(b"shared inode\n" * 100)
    os.link(root / "hard" / "zz-original", root / "hard" / "aa-second-name")
    os.link(root / "hard" / "zz-original", root / "mm-third-name")
    with open(root / "sparse.img", "wb") as f:
        f.truncate(8 << 20)
        f.seek(4 << 20)
        f.write(b"data in the middle of a hole")
    (root / "secret").mkdir(mode=0o700)
    (root / "secret" / "key").write_bytes(b"k" * 64)
    os.chmod(root / "secret" / "key", 0o600)
    for p in (root / "secret", root / "secret" / "key"):
        os.chown(p, 1000, 1000)
    (root / "shared").mkdir()
    os.chown(root / "shared", 0, 2000)
    os.chmod(root / "shared", 0o2775)
    (root / "prom").mkdir()
    (root / "prom" / "wal").write_bytes(b"\x00\x01" * 1000)
    os.chown(root / "prom" / "wal", 65534, 65534)
    os.chmod(root / "prom" / "wal", 0o640)
    return root


def gnu_tar(src: Path, archive: Path, fmt: str = "gnu") -> Path:
    cmd = ["tar", f"--format={fmt}", "--numeric-owner", "-S", "-C", str(src), "-cpf", str(archive), "."]
    subprocess.run(cmd, check=True)
    return archive


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return build_fidelity_tree(tmp_path / "src")


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_tar_manifest_equals_dir_manifest_before_and_after_safe_extract(tmp_path: Path, tree: Path,
                                                                      fmt: str) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar", fmt)
    source = manifest_from_dir(tree)

    streamed = manifest_from_tar(archive)
    safe_extract(archive, tmp_path / "restored")
    restored = manifest_from_dir(tmp_path / "restored")

    for other in (streamed, restored):
        diff = compare(source, other)
        assert diff.equal, diff.summary()
        assert other.root_hash == source.root_hash
        assert other.totals == source.totals
    assert source.totals == {"f": 10, "d": 11, "l": 3, "h": 2, "o": 0, "entries": 26, "bytes": 8392023}
    assert source.entries["links/dangling"].link == "nowhere/at/all"
    assert source.entries["hard/zz-original"].type == "h"  # smallest path of the group carries the data
    assert source.entries["hard/zz-original"].link == "hard/aa-second-name"
    assert source.entries[LATIN1].sha256 == restored.entries[LATIN1].sha256
    assert os.lstat(tmp_path / "restored" / "sparse.img").st_blocks * 512 < 1 << 20  # holes kept


def test_empty_volume_stays_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    archive = gnu_tar(tmp_path / "empty", tmp_path / "empty.tar")
    safe_extract(archive, tmp_path / "restored")
    for m in (manifest_from_tar(archive), manifest_from_dir(tmp_path / "restored")):
        assert list(m.entries) == ["."]
        assert compare(manifest_from_dir(tmp_path / "empty"), m).equal


def test_planted_marker_file_on_the_target_is_an_extra_path(tmp_path: Path, tree: Path) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar")
    safe_extract(archive, tmp_path / "restored")
    (tmp_path / "restored" / "KIBISHII-MARKER").write_text("written after the backup\n")

    diff = compare(manifest_from_tar(archive), manifest_from_dir(tmp_path / "restored"))

    assert not diff.equal
    assert (diff.missing, diff.extra, diff.changed) == ([], ["KIBISHII-MARKER"], [])
    with pytest.raises(DataMismatchError, match=r"0 missing, 1 extra, 0 changed .*extra: KIBISHII-MARKER"):
        diff.raise_for_mismatch("pvc grafana")


def test_changed_owner_content_and_link_target_are_each_reported(tmp_path: Path, tree: Path) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar")
    safe_extract(archive, tmp_path / "restored")
    out = tmp_path / "restored"
    os.chown(out / "secret" / "key", 4242, 1000)
    (out / "plain.txt").write_text("HELLO\n")  # same size, different bytes
    os.unlink(out / "links" / "to-plain")
    os.symlink("../empty.bin", out / "links" / "to-plain")
    os.unlink(out / "empty.bin")

    diff = compare(manifest_from_dir(tree), manifest_from_dir(out))

    assert diff.missing == ["empty.bin"]
    assert dict(diff.changed) == {"links/to-plain": ["link"], "plain.txt": ["sha256"], "secret/key": ["uid"]}
    assert "1 missing, 0 extra, 3 changed" in diff.summary()


def test_mtime_drift_alone_is_information_not_a_difference(tmp_path: Path, tree: Path) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar")
    safe_extract(archive, tmp_path / "restored")
    os.utime(tmp_path / "restored" / "plain.txt", (1, 1))
    diff = compare(manifest_from_dir(tree), manifest_from_dir(tmp_path / "restored"))
    assert diff.equal
    assert diff.mtime_drift == 1
    assert diff.summary() == "manifests equal: 26 entries; mtime differs on 1 (information only)"


def _end_of_last_member(archive: Path) -> int:
    with tarfile.open(archive) as tf:
        last = tf.getmembers()[-1]
    return last.offset_data + -(-last.size // 512) * 512


def test_stream_cut_on_a_member_boundary_fails_though_tarfile_accepts_it(tmp_path: Path, tree: Path) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: _end_of_last_member(archive)])
    with tarfile.open(cut) as tf:
        assert len(tf.getmembers()) == 26  # the plain library reports a complete archive

    with pytest.raises(DataMismatchError, match=r"cut\.tar is truncated: .* without the tar end-of-archive"):
        manifest_from_tar(cut)


def test_truncated_exec_stream_through_a_pipe_fails(tmp_path: Path, tree: Path) -> None:
    archive = gnu_tar(tree, tmp_path / "vol.tar")
    size = archive.stat().st_size
    with subprocess.Popen(["head", "-c", str(size // 2), str(archive)], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        with pytest.raises(DataMismatchError, match=r"truncated"):
            manifest_from_tar(proc.stdout)


def test_complete_stream_through_a_pipe_matches_the_directory(tmp_path: Path, tree: Path) -> None:
    cmd = ["tar", "--numeric-owner", "-S", "-C", str(tree), "-cpf", "-", "."]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        streamed = manifest_from_tar(proc.stdout)
    assert proc.returncode == 0
    assert compare(manifest_from_dir(tree), streamed).equal
    assert streamed.source == "<stream>"


def test_json_round_trip_keeps_non_utf8_and_newline_names(tree: Path) -> None:
    m = manifest_from_dir(tree)
    back = Manifest.from_json(m.to_json())
    assert back == m
    assert back.root_hash == m.root_hash
    assert "new\nline.txt" in back.entries and LATIN1 in back.entries


def test_garbage_json_is_not_a_manifest() -> None:
    with pytest.raises(DataMismatchError, match=r"not a k3smig manifest"):
        Manifest.from_json('{"format": 99, "entries": []}')


def test_rows_feed_a_dataframe_with_octal_modes(tree: Path) -> None:
    df = pd.DataFrame(manifest_from_dir(tree).rows())
    assert len(df) == 26
    assert df.set_index("path").loc["secret/key", ["mode", "uid", "gid"]].tolist() == ["0600", 1000, 1000]
    assert df.set_index("path").loc["shared", "mode"] == "2775"


def test_manifest_of_a_symlinked_root_is_refused(tmp_path: Path, tree: Path) -> None:
    os.symlink(tree, tmp_path / "link")
    with pytest.raises(SourceError, match=r"not a directory \(a symlink\?\)"):
        manifest_from_dir(tmp_path / "link")


def test_fifo_is_recorded_as_other(tmp_path: Path) -> None:
    (tmp_path / "v").mkdir()
    os.mkfifo(tmp_path / "v" / "pipe")
    entry = manifest_from_dir(tmp_path / "v").entries["pipe"]
    assert (entry.type, entry.link, entry.sha256) == ("o", "fifo", "")


def test_gzip_compressed_stream_gives_the_same_manifest(tmp_path: Path, tree: Path) -> None:
    archive = tmp_path / "vol.tar.gz"
    cmd = ["tar", "--numeric-owner", "-S", "-z", "-C", str(tree), "-cpf", str(archive), "."]
    subprocess.run(cmd, check=True)
    with archive.open("rb") as fh:
        streamed = manifest_from_tar(fh)
    assert streamed.root_hash == manifest_from_dir(tree).root_hash
