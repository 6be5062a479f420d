"""Deltas between manifests, and the relay that hashes a stream on its way to the target."""

from __future__ import annotations

import gzip
import io
import subprocess
from pathlib import Path

import pytest

from k3smig_lib.core.manifest import Entry, Manifest, manifest_from_dir
from k3smig_lib.core.transfer import extract_selected, plan_delta, relay
from k3smig_lib.errors import DataMismatchError

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster" / "volumes"


def entry(path: str, kind: str = "f", sha: str = "aa", size: int = 1, mode: int = 0o644, link: str = "",
          uid: int = 0) -> Entry:
    return Entry(path, kind, size if kind in "fh" else 0, mode, uid, uid, link, sha if kind in "fh" else "", 0)


def manifest(*entries: Entry) -> Manifest:
    root = entry(".", "d")
    return Manifest({e.path: e for e in (root, *entries)}, "test")


def test_an_empty_target_gets_the_whole_volume():
    delta = plan_delta(manifest(entry("a", size=7)), None)
    assert delta.full and delta.send_bytes == 7 and not delta.delete


def test_equal_manifests_need_nothing():
    m = manifest(entry("a"), entry("d", "d"))
    assert plan_delta(m, m).nothing


def test_a_changed_file_is_deleted_then_sent_and_an_extra_tree_is_deleted_from_its_top():
    src = manifest(entry("a", sha="new"), entry("keep"))
    tgt = manifest(entry("a", sha="old"), entry("keep"), entry("x", "d"), entry("x/y"), entry("x/y2"))
    delta = plan_delta(src, tgt)
    assert delta.send == ["a"] and delta.delete == ["a", "x"]
    assert (delta.missing, delta.changed, delta.extra) == (0, 1, 3)


def test_a_changed_hard_link_brings_its_whole_group():
    src = manifest(entry("a", sha="new"), entry("b", "h", sha="new", link="a"))
    tgt = manifest(entry("a", sha="old"), entry("b", "h", sha="old", link="a"))
    delta = plan_delta(src, tgt)
    assert set(delta.send or []) == {"a", "b"} and set(delta.delete) == {"a", "b"}


def test_a_folder_whose_mode_changed_is_sent_alone_and_never_deleted():
    src = manifest(entry("d", "d", mode=0o700), entry("d/f"))
    tgt = manifest(entry("d", "d", mode=0o755), entry("d/f"))
    delta = plan_delta(src, tgt)
    assert delta.send == ["d"] and delta.delete == []


def test_the_root_is_sent_first_and_never_deleted():
    src = Manifest({".": entry(".", "d", mode=0o750), "a": entry("a")}, "s")
    tgt = Manifest({".": entry(".", "d", mode=0o777), "a": entry("a")}, "t")
    delta = plan_delta(src, tgt)
    assert delta.send == ["."] and delta.delete == []


def tar_of(folder: Path) -> bytes:
    return subprocess.run(["tar", "-c", "-f", "-", "--numeric-owner", "-C", str(folder), "."], check=True,
                          capture_output=True).stdout


def test_the_relay_forwards_every_byte_and_hashes_exactly_what_passed(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "f").write_bytes(b"x" * 100_000)
    data = tar_of(tmp_path / "v")
    out = bytearray()
    m, count = relay(io.BytesIO(data), out.extend, "test")
    assert bytes(out) == data and count == len(data)
    assert m.root_hash == manifest_from_dir(tmp_path / "v").root_hash


def test_a_gzip_archive_reaches_the_sink_as_plain_tar():
    archive = (EXAMPLE / "grafana-data.tar.gz") if (EXAMPLE / "grafana-data.tar.gz").exists() else \
        EXAMPLE / "monitoring" / "grafana-data.tar.gz"
    raw = archive.read_bytes()
    out = bytearray()
    m, count = relay(io.BytesIO(raw), out.extend, "grafana")
    assert bytes(out) == gzip.decompress(raw) and count == len(out)
    assert "grafana.db" in m.entries


def test_a_stream_cut_before_the_end_marker_is_a_mismatch_never_a_short_copy(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "f").write_bytes(b"y" * 50_000)
    data = tar_of(tmp_path / "v")
    with pytest.raises(DataMismatchError, match="truncated|corrupt"):
        relay(io.BytesIO(data[: 512 * 40]), bytearray().extend, "cut")


def test_extract_selected_writes_only_named_regular_files_inside_the_folder(tmp_path):
    (tmp_path / "v" / "d").mkdir(parents=True)
    (tmp_path / "v" / "d" / "db.sqlite3").write_bytes(b"db")
    (tmp_path / "v" / "other").write_bytes(b"no")
    (tmp_path / "v" / "link").symlink_to("/etc/passwd")
    out = tmp_path / "out"
    out.mkdir()
    found = extract_selected(io.BytesIO(tar_of(tmp_path / "v")), ["d/db.sqlite3", "link", "absent"], out, "t")
    assert found == ["d/db.sqlite3"]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["d", "d/db.sqlite3"]
