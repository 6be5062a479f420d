"""The data path end to end on real folders, real GNU tar and the real volume scripts (no cluster).

Passes, deltas, re-runs, cut streams and changes during the final pass, between volumes driven by
the same scripts a helper pod runs (tests/support/localvolume.py), and from archives into folders.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from k3smig_lib.backends.base import VolumeRef
from k3smig_lib.backends.directory_volumes import FolderVolume, leftovers_of_killed_runs, remove_stale_staging
from k3smig_lib.backends.live_volumes import Exec
from k3smig_lib.backends.snapshot import ArchiveVolume
from k3smig_lib.core.manifest import Manifest, manifest_from_dir
from k3smig_lib.core.ownership import plan_ownership
from k3smig_lib.errors import DataMismatchError, LimitError
from k3smig_lib.k8s.exec import ExecResult
from k3smig_lib.phases._datapath import DIRTY, PROVEN, copy_pass, prove

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
from localvolume import LocalVolume  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster" / "volumes"


def build_tree(root: Path) -> None:
    """Everything a real volume holds that a naive copy loses."""
    (root / "db").mkdir(parents=True)
    (root / "db" / "data.sqlite3").write_bytes(b"SQLite format 3\x00" + b"x" * 5000)
    (root / "a b").write_text("hello")
    os.link(root / "a b", root / "hard")
    (root / "empty-dir").mkdir()
    (root / "zero").write_bytes(b"")
    os.symlink("../outside/etc", root / "link-out")  # a link pointing out of the volume: copied as a link
    (root / "setuid").write_text("s")
    os.chmod(root / "setuid", 0o4755)
    with open(root / "sparse", "wb") as fh:
        fh.truncate(8 << 20)
        fh.write(b"end")
    (root / os.fsdecode(b"latin-\xe9")).write_text("non utf-8 name")
    (root / "new\nline").write_text("newline in the name")
    (root / "-dash").write_text("leading dash")
    deep = root / ("d" * 200) / ("e" * 200)
    deep.mkdir(parents=True)
    (deep / ("f" * 200)).write_text("a path of more than 600 bytes")
    os.chown(root / "db", 472, 472)
    os.chown(root / "db" / "data.sqlite3", 472, 0)
    os.chmod(root / "db", 0o2770)


def manifest_plan(source: Manifest):  # type: ignore[no-untyped-def]
    return plan_ownership("ns/vol", source, None)


@pytest.fixture()
def pair(tmp_path: Path) -> tuple[LocalVolume, LocalVolume]:
    src = LocalVolume(tmp_path / "src", "source")
    build_tree(src.folder)
    return src, LocalVolume(tmp_path / "dst", "target")


def full_copy(src: LocalVolume, dst: LocalVolume) -> None:
    m = src.manifest()
    copy_pass(src, dst, manifest_plan(m), name="copy", source=m)


def test_a_first_copy_sends_everything_and_the_target_reread_from_disk_equals_the_source(pair):
    src, dst = pair
    m = src.manifest()
    rec = copy_pass(src, dst, manifest_plan(m), name="copy", source=m)
    assert rec.delta.full and rec.bytes_sent > 0 and rec.stream_entries == len(m.entries)
    proof = prove(src, dst, manifest_plan(m), m)
    assert proof.proven, proof.problem()
    assert manifest_from_dir(dst.folder).root_hash == m.root_hash
    assert dst.state() == f"{PROVEN}:{m.root_hash[:16]}"
    assert os.stat(dst.folder / "sparse").st_blocks * 512 < 1 << 20  # still sparse on the target
    assert os.readlink(dst.folder / "link-out") == "../outside/etc"
    assert os.stat(dst.folder / "hard").st_ino == os.stat(dst.folder / "a b").st_ino
    assert os.stat(dst.folder / "setuid").st_mode & 0o7777 == 0o4755
    assert (os.stat(dst.folder / "db").st_uid, os.stat(dst.folder / "db").st_mode & 0o7777) == (472, 0o2770)


def test_a_second_run_sends_nothing(pair):
    src, dst = pair
    full_copy(src, dst)
    m = src.manifest()
    rec = copy_pass(src, dst, manifest_plan(m), name="again", source=m)
    assert rec.delta.nothing and rec.bytes_sent == 0


def test_the_final_pass_sends_only_what_changed_and_deletes_what_vanished(pair):
    src, dst = pair
    full_copy(src, dst)
    (src.folder / "a b").write_text("changed content, so its hard link travels too")
    (src.folder / "zero").unlink()
    (src.folder / "empty-dir").rmdir()
    (src.folder / "empty-dir").write_text("a folder became a file")
    (src.folder / "brand-new").write_text("new")
    os.chmod(src.folder, 0o750)
    m = src.manifest()
    rec = copy_pass(src, dst, manifest_plan(m), name="final pass", source=m)
    assert not rec.delta.full
    assert set(rec.delta.send or []) == {".", "a b", "hard", "empty-dir", "brand-new"}
    assert set(rec.delta.delete) == {"zero", "a b", "hard", "empty-dir"}
    assert rec.bytes_sent < 10 * 10240  # not the 8 MiB sparse file, nor the rest
    proof = prove(src, dst, manifest_plan(m), m)
    assert proof.proven, proof.problem()
    assert os.stat(dst.folder / "hard").st_ino == os.stat(dst.folder / "a b").st_ino


def test_a_planted_marker_on_the_target_does_not_survive(pair):
    src, dst = pair
    full_copy(src, dst)
    (dst.folder / "MARKER").write_text("planted after the copy")  # Velero's Kibishii marker
    m = src.manifest()
    assert copy_pass(src, dst, manifest_plan(m), name="again", source=m).delta.delete == ["MARKER"]
    assert not (dst.folder / "MARKER").exists()
    assert prove(src, dst, manifest_plan(m), m).proven


class Cut:
    """A source stream cut after ``limit`` bytes, its sentinel lost (a dropped exec websocket)."""

    def __init__(self, inner: Exec, limit: int) -> None:
        self.inner, self.limit = inner, limit
        self.what, self.stdout_bytes = inner.what, 0

    def write(self, data: bytes, /) -> int:
        return self.inner.write(data)

    def read(self, size: int = -1, /) -> bytes:
        left = self.limit - self.stdout_bytes
        data = self.inner.read(min(size, left) if size > 0 else left) if left > 0 else b""
        self.stdout_bytes += len(data)
        return data

    def read_some(self) -> bytes:
        return self.read(1 << 16)

    def read_all(self) -> bytes:
        return self.read(-1)

    def close_stdin(self) -> None:
        self.inner.close_stdin()

    def finish(self, *, deadline: float = 600.0) -> ExecResult:
        self.inner.close()
        return ExecResult(None, -1, "", self.stdout_bytes, 0)

    def close(self) -> None:
        self.inner.close()


def test_a_stream_cut_in_the_middle_fails_marks_the_target_dirty_and_a_rerun_repairs_it(pair, tmp_path):
    src, dst = pair
    (src.folder / "big").write_bytes(os.urandom(3 << 20))
    cut = LocalVolume(src.folder, "source", wrap=lambda ex, script: Cut(ex, 1 << 20) if "tar -c" in script else ex)
    m = cut.manifest()
    with pytest.raises(DataMismatchError, match="tar -c: the command ended without its exit sentinel"):
        copy_pass(cut, dst, manifest_plan(m), name="copy", source=m)
    assert dst.state() == DIRTY
    assert not prove(src, dst, manifest_plan(m), m).proven
    rec = copy_pass(src, dst, manifest_plan(m), name="re-run", source=m)
    assert rec.bytes_sent > 0
    assert prove(src, dst, manifest_plan(m), m).proven


def test_a_file_written_during_the_final_pass_is_found_and_the_volume_is_not_proven(pair):
    src, dst = pair
    m = src.manifest()
    copy_pass(src, dst, manifest_plan(m), name="final pass", source=m)
    (src.folder / "db" / "data.sqlite3").write_bytes(b"SQLite format 3\x00" + b"y" * 5000)  # the app still writes
    proof = prove(src, dst, manifest_plan(m), m)
    assert not proof.proven and proof.changed_on_source == ["db/data.sqlite3"]
    assert "changed during the final pass" in proof.problem()
    assert dst.state() == DIRTY  # never marked proven


def test_owners_are_remapped_by_the_plan_and_setuid_bits_survive_the_chown(pair):
    src, dst = pair
    m = src.manifest()
    spec = {"securityContext": {"runAsUser": 1000, "fsGroup": 2000},
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "vol"}}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "v"}]}]}
    plan = plan_ownership("ns/vol", m, spec)
    assert plan.action == "chown"
    copy_pass(src, dst, plan, name="copy", source=m)
    assert prove(src, dst, plan, m).proven
    st = os.stat(dst.folder / "setuid")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 2000, 0o4755)
    assert os.lstat(dst.folder / "link-out").st_uid == 1000  # the link itself, never its target


def test_an_archive_goes_into_a_fresh_folder_and_replaces_it_whole(tmp_path):
    vol = VolumeRef("vaultwarden", "vaultwarden-data", size="1Gi")
    src = ArchiveVolume(vol, EXAMPLE / "vaultwarden" / "vaultwarden-data.tar.gz")
    dst = FolderVolume(tmp_path / "target", vol)
    m = src.manifest()
    assert dst.manifest() is None
    rec = copy_pass(src, dst, manifest_plan(m), name="copy", source=m)
    assert rec.write is not None and rec.write.bytes_extracted == rec.delta.send_bytes == m.totals["bytes"]
    assert prove(src, dst, manifest_plan(m), m).proven
    (dst.folder / "stale").write_text("x")
    rec = copy_pass(src, dst, manifest_plan(m), name="again", source=m)
    assert rec.delta.full  # a folder target is rewritten whole, never patched
    assert not (dst.folder / "stale").exists() and prove(src, dst, manifest_plan(m), m).proven


def test_a_killed_write_leaves_only_a_staging_folder_that_the_next_write_removes(tmp_path):
    vol = VolumeRef("vaultwarden", "vaultwarden-data")
    dst = FolderVolume(tmp_path / "target", vol)
    leftover = dst.folder.parent / ".k3smig-staging-killed"
    leftover.mkdir(parents=True)
    (leftover / "stream.tar").write_bytes(b"partial")
    assert remove_stale_staging(dst.folder.parent) == [".k3smig-staging-killed"]
    assert not leftover.exists()


def test_fetch_copies_only_regular_files_inside_the_volume(pair, tmp_path):
    src, _ = pair
    out = tmp_path / "fetched"
    out.mkdir()
    got = src.fetch(["db/data.sqlite3", "link-out", "missing"], out)
    assert got == ["db/data.sqlite3"]
    assert (out / "db" / "data.sqlite3").read_bytes().startswith(b"SQLite format 3")


def test_a_stream_larger_than_its_manifest_is_stopped_before_the_target_fills(pair):
    src, dst = pair
    m = src.manifest()
    (src.folder / "grown").write_bytes(os.urandom(24 << 20))  # written after the manifest was read
    with pytest.raises(LimitError, match="grew past"):
        copy_pass(src, dst, manifest_plan(m), name="copy", source=m)
    assert dst.state() == DIRTY


def test_leftovers_of_a_killed_run_are_removed_but_never_a_user_file_inside_a_volume(tmp_path):
    root = tmp_path / "target"
    user_file = root / "volumes" / "ns" / "claim" / "data" / ".k3smig-tmp-999999-x"
    user_file.parent.mkdir(parents=True)
    user_file.write_text("a user's file that merely looks like ours")
    ours = root / "manifests" / ".k3smig-tmp-999999-y"
    ours.parent.mkdir(parents=True)
    ours.write_text("partial")
    staging = root / "volumes" / "ns" / ".k3smig-staging-999999-abc"
    staging.mkdir()
    removed = leftovers_of_killed_runs(root)
    assert sorted(p.name for p in removed) == [".k3smig-staging-999999-abc", ".k3smig-tmp-999999-y"]
    assert user_file.exists()


def test_an_archive_past_the_claim_size_and_its_margin_is_refused_before_anything_is_written(tmp_path):
    vol = VolumeRef("vaultwarden", "vaultwarden-data", size="64Ki")
    src = ArchiveVolume(vol, EXAMPLE / "vaultwarden" / "vaultwarden-data.tar.gz")
    dst = FolderVolume(tmp_path / "target", vol, margin=0.1)
    m = src.manifest()
    with pytest.raises(LimitError):
        copy_pass(src, dst, manifest_plan(m), name="copy", source=m)
    assert not dst.folder.exists()
