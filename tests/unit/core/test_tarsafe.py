"""Case 19 (malicious archives) and case 20 (planted symlinks): nothing is ever written outside.

Archives are real tar files, built with ``tarfile`` so that each hostile member is exactly the one
an attacker would craft. Every refusal test snapshots the whole temporary tree (``lstat``, content
hashes) before and after and requires it unchanged: no escaped file, no staging directory left.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from k3smig_lib.core import tarsafe
from k3smig_lib.core.tarsafe import prescan, safe_extract
from k3smig_lib.errors import DataMismatchError, LimitError, ParameterError, TargetError, UnsafeArchiveError

Member = tuple[tarfile.TarInfo, bytes | None]


def _m(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes = b"", link: str = "", mode: int = 0o644,
       uid: int = 0, gid: int = 0) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, uid, gid
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def _write(path: Path, members: list[Member], fmt: int = tarfile.GNU_FORMAT) -> Path:
    with tarfile.open(path, "w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under root with its lstat mode and content hash (files) or link target."""
    out: dict[str, tuple[int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            full = Path(dirpath, name)
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                detail = hashlib.sha256(full.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                detail = os.readlink(full)
            else:
                detail = ""
            out[str(full.relative_to(root))] = (st.st_mode, detail)
    return out


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    """tmp/work is the destination's parent; tmp/outside holds a victim file an attacker targets."""
    (tmp_path / "work").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "victim.txt").write_text("original\n")
    return {"root": tmp_path, "work": tmp_path / "work", "outside": tmp_path / "outside",
            "dest": tmp_path / "work" / "vol", "archive": tmp_path / "outside" / "evil.tar"}


ETC_MARKER = f"k3smig-pwned-{uuid.uuid4().hex}"


def _maze(steps: str) -> list[Member]:
    """The CVE-2025-4517 shape: long dirs plus symlinks so realpath() gives up at PATH_MAX."""
    comp, path, members = "d" * 247, "", []
    for step in steps:
        members.append(_m(os.path.join(path, comp), tarfile.DIRTYPE, mode=0o755))
        members.append(_m(os.path.join(path, step), tarfile.SYMTYPE, link=comp))
        path = os.path.join(path, comp)
    deep = os.path.join("/".join(steps), "l" * 254)
    members.append(_m(deep, tarfile.SYMTYPE, link="../" * len(steps)))
    members.append(_m("escape", tarfile.SYMTYPE, link=deep + "/../outside"))
    members.append(_m("escape/pwned.txt", data=b"owned\n"))
    return members


MALICIOUS: dict[str, tuple[Callable[[dict[str, Path]], list[Member]], str]] = {
    "dotdot name": (lambda b: [_m("ok.txt", data=b"fine\n"), _m("../escaped.txt", data=b"x")],
                    r"'\.\./escaped\.txt' climbs out of the destination"),
    "nested dotdot name": (lambda b: [_m("a/b/../../../escaped.txt", data=b"x")], r"climbs out"),
    "absolute name": (lambda b: [_m(str(b["outside"] / "abs.txt"), data=b"x")], r"has an absolute path"),
    "symlink to /etc then a file through it": (
        lambda b: [_m("etc", tarfile.SYMTYPE, link="/etc"),
                   _m(f"etc/{ETC_MARKER}", data=b"root::0:0::/:/bin/sh\n")],
        r"'etc' is a symlink to the absolute path '/etc'"),
    "relative symlink out then a file through it": (
        lambda b: [_m("up", tarfile.SYMTYPE, link="../../outside"), _m("up/victim.txt", data=b"replaced\n")],
        r"'up/victim\.txt' would be written through the symlink member 'up'"),
    "symlink escaping through another symlink": (
        lambda b: [_m("x", tarfile.SYMTYPE, link="."), _m("y", tarfile.SYMTYPE, link="x/../outside")],
        r"'y' is a symlink to 'x/\.\./outside', which resolves outside the destination"),
    "hard link to a relative outside path": (
        lambda b: [_m("h", tarfile.LNKTYPE, link="../outside/victim.txt")], r"hard link to .*climbs out"),
    "hard link to an absolute path": (
        lambda b: [_m("h", tarfile.LNKTYPE, link=str(b["outside"] / "victim.txt"))], r"has an absolute path"),
    "hard link to a name the archive never had": (
        lambda b: [_m("h", tarfile.LNKTYPE, link="etc/shadow")], r"not an earlier regular file"),
    "character device": (
        lambda b: [_m("null", tarfile.CHRTYPE, mode=0o666)], r"'null' is a character device"),
    "block device": (lambda b: [_m("sda", tarfile.BLKTYPE, mode=0o660)], r"is a block device"),
    "fifo": (lambda b: [_m("pipe", tarfile.FIFOTYPE)], r"'pipe' is a FIFO"),
    "setuid file": (lambda b: [_m("su", data=b"\x7fELF", mode=0o4755)], r"'su' is setuid \(mode 4755\)"),
    "setgid file": (lambda b: [_m("sg", data=b"\x7fELF", mode=0o2755)], r"'sg' is a setgid file"),
    "empty-named symlink": (lambda b: [_m("", tarfile.SYMTYPE, link="..")], r"has an empty name"),
    "symlink named as the root": (
        lambda b: [_m("./", tarfile.SYMTYPE, link="../outside")], r"names the destination root"),
    "symlink with an empty target": (lambda b: [_m("s", tarfile.SYMTYPE, link="")], r"empty target"),
    "empty components in a name": (lambda b: [_m("a//b", data=b"x")], r"non-canonical path"),
    "chain of 45 symlinks": (
        lambda b: [_m(f"l{i}", tarfile.SYMTYPE, link=f"l{i + 1}") for i in range(45)]
        + [_m("l45", tarfile.SYMTYPE, link=".")],
        r"more than 40 symlink hops"),
    "symlink loop": (
        lambda b: [_m("a", tarfile.SYMTYPE, link="b"), _m("b", tarfile.SYMTYPE, link="a")], r"symlink hops"),
    "duplicate name replacing a file by a link": (
        lambda b: [_m("data", data=b"x"), _m("data", tarfile.SYMTYPE, link="../outside")], r"appears twice"),
    "file placed under a regular file": (
        lambda b: [_m("f", data=b"x"), _m("f/g", data=b"y")], r"'f/g' is placed under 'f'"),
    "PATH_MAX symlink maze (CVE-2025-4517 shape)": (
        lambda b: _maze("abcdefghijklmnop"), r"is longer than 3840 bytes"),
    "shorter symlink maze written through its links": (
        lambda b: _maze("abcdefghijkl"),
        r"'a/b/c/d/e/f/g/h/i/j/k/l/lll.*' would be written through the symlink member 'a'"),
}


@pytest.mark.parametrize("case", list(MALICIOUS))
def test_malicious_archive_is_refused_and_nothing_is_written(box: dict[str, Path], case: str) -> None:
    build, message = MALICIOUS[case]
    archive = _write(box["archive"], build(box))
    before = _snapshot(box["root"])

    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract(archive, box["dest"])

    assert _snapshot(box["root"]) == before  # no escaped file, no dest, no staging directory
    assert not Path("/etc", ETC_MARKER).exists()
    assert (box["outside"] / "victim.txt").read_text() == "original\n"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_prescan_refuses_before_reading_further_members_are_extracted(box: dict[str, Path], fmt: int) -> None:
    archive = _write(box["archive"], [_m("ok.txt", data=b"fine\n"), _m("../x", data=b"x")], fmt)
    with pytest.raises(UnsafeArchiveError, match=r"nothing was extracted"):
        prescan(archive)


def test_truncated_archive_fails_closed_and_removes_staging(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("a.txt", data=b"a" * 5000), _m("b.txt", data=b"b" * 700)])
    with tarfile.open(archive) as tf:
        last = tf.getmembers()[-1]
    cut = last.offset_data + 1024  # end of b.txt's data: a header boundary, before the zero blocks
    archive.write_bytes(archive.read_bytes()[:cut])
    with tarfile.open(archive) as tf:  # plain tarfile accepts the cut archive without a word
        assert [m.name for m in tf.getmembers()] == ["a.txt", "b.txt"]
    before = _snapshot(box["root"])

    with pytest.raises(DataMismatchError, match=r"truncated: it ends at byte 7168 without the tar end"):
        safe_extract(archive, box["dest"])

    assert _snapshot(box["root"]) == before


def test_archive_cut_inside_member_data_is_a_data_mismatch(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("a.txt", data=b"a" * 5000)])
    archive.write_bytes(archive.read_bytes()[:3000])
    with pytest.raises(DataMismatchError, match=r"truncated or corrupt: unexpected end of data"):
        safe_extract(archive, box["dest"])
    assert not box["dest"].exists()
    assert os.listdir(box["work"]) == []


def test_corrupt_gzip_is_a_data_mismatch_even_where_tarfile_stops_silently(box: dict[str, Path]) -> None:
    path = box["outside"] / "vol.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        text = b"".join(b"line %d of a compressible log file\n" % i for i in range(20_000))
        info, data = _m("a.log", data=text)
        tf.addfile(info, io.BytesIO(data or b""))
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    with pytest.raises(DataMismatchError, match=r"vol\.tar\.gz is truncated"):
        safe_extract(path, box["dest"])
    assert os.listdir(box["work"]) == []


def test_planted_symlink_ancestor_is_refused_and_nothing_written_through_it(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("victim.txt", data=b"replaced\n")])
    os.symlink(box["outside"], box["work"] / "run")  # left behind by an "earlier partial run"
    before = _snapshot(box["root"])

    with pytest.raises(TargetError, match=r"refusing to extract through the symlink .*/work/run \(possibly"):
        safe_extract(archive, box["work"] / "run" / "vol")

    assert _snapshot(box["root"]) == before
    assert (box["outside"] / "victim.txt").read_text() == "original\n"


def test_destination_that_is_itself_a_symlink_is_refused(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("victim.txt", data=b"replaced\n")])
    (box["outside"] / "empty").mkdir()
    os.symlink(box["outside"] / "empty", box["dest"])
    with pytest.raises(TargetError, match=r"exists and is not a plain directory"):
        safe_extract(archive, box["dest"])
    assert os.listdir(box["outside"] / "empty") == []


def test_non_empty_destination_is_refused_so_stale_files_cannot_survive(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("a.txt", data=b"a")])
    box["dest"].mkdir()
    (box["dest"] / "KIBISHII-MARKER").write_text("old run\n")
    with pytest.raises(TargetError, match=r"is not empty \(1 entries, e\.g\. \['KIBISHII-MARKER'\]\)"):
        safe_extract(archive, box["dest"])


def test_stale_staging_dir_with_planted_link_is_never_reused(box: dict[str, Path]) -> None:
    stale = box["work"] / ".vol.k3smig-staging-oldrun"
    stale.mkdir()
    os.symlink(box["outside"], stale / "data")
    archive = _write(box["archive"], [_m("data", tarfile.DIRTYPE, mode=0o755),
                                      _m("data/victim.txt", data=b"new\n")])

    report = safe_extract(archive, box["dest"])

    assert report.staging_used != str(stale)
    assert not Path(report.staging_used).exists()
    assert (box["dest"] / "data" / "victim.txt").read_text() == "new\n"
    assert (box["outside"] / "victim.txt").read_text() == "original\n"
    assert os.readlink(stale / "data") == str(box["outside"])


def test_extraction_keeps_numeric_owners_setgid_dirs_and_group_write(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [
        _m(".", tarfile.DIRTYPE, mode=0o775, uid=472, gid=472),
        _m("shared", tarfile.DIRTYPE, mode=0o2775, uid=0, gid=2000),
        _m("shared/report.csv", data=b"a,b\n", mode=0o664, uid=1000, gid=2000),
        _m("private", tarfile.DIRTYPE, mode=0o700, uid=1000, gid=1000),
        _m("private/key", data=b"k" * 32, mode=0o600, uid=1000, gid=1000),
        _m("tmp", tarfile.DIRTYPE, mode=0o1777),
        _m("private/link", tarfile.SYMTYPE, link="key", uid=1000, gid=1000),
        _m("private/key2", tarfile.LNKTYPE, link="private/key", mode=0o600, uid=1000, gid=1000),
    ])
    box["dest"].mkdir()  # an empty directory is replaced

    report = safe_extract(archive, box["dest"])

    assert (report.members, report.bytes, report.owners_applied) == (8, 36, True)
    def owner(p: str) -> tuple[int, int, int]:
        st = os.lstat(box["dest"] / p)
        return stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
    assert owner(".") == (0o775, 472, 472)
    assert owner("shared") == (0o2775, 0, 2000)
    assert owner("shared/report.csv") == (0o664, 1000, 2000)
    assert owner("private/key") == (0o600, 1000, 1000)
    assert owner("tmp")[0] == 0o1777
    assert os.lstat(box["dest"] / "private/link").st_uid == 1000
    assert os.stat(box["dest"] / "private/key2").st_ino == os.stat(box["dest"] / "private/key").st_ino
    assert sorted(os.listdir(box["work"])) == ["vol"]


def test_archive_without_root_member_gives_a_0755_root(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [_m("a.txt", data=b"a")])
    safe_extract(archive, box["dest"])
    assert stat.S_IMODE(os.lstat(box["dest"]).st_mode) == 0o755


def test_extraction_refuses_members_that_differ_from_the_prescan(box: dict[str, Path]) -> None:
    scanned = _write(box["outside"] / "scanned.tar", [_m("a.txt", data=b"a")])
    swapped = _write(box["outside"] / "swapped.tar", [_m("a.txt", tarfile.SYMTYPE, link="/etc/passwd")])
    staging = box["work"] / "staging"
    staging.mkdir()
    with pytest.raises(UnsafeArchiveError, match=r"differs from the pre-scanned archive"):
        tarsafe._extract_members(swapped, staging, prescan(scanned), True)
    assert os.listdir(staging) == []


def test_prescan_accepts_relative_links_that_stay_inside(box: dict[str, Path]) -> None:
    archive = _write(box["archive"], [
        _m(".", tarfile.DIRTYPE, mode=0o755),
        _m("conf", tarfile.DIRTYPE, mode=0o755),
        _m("conf/app.yml", data=b"a: 1\n"),
        _m("current", tarfile.SYMTYPE, link="conf"),
        _m("conf/self", tarfile.SYMTYPE, link="../current/app.yml"),
        _m("dangling", tarfile.SYMTYPE, link="not-yet/created"),
    ])
    names = [m.name for m in prescan(archive)]
    assert names == [".", "conf", "conf/app.yml", "current", "conf/self", "dangling"]


def test_a_sparse_ten_gib_file_in_a_one_gib_claim_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A real GNU tar --sparse archive: a few KiB on disk, 10 GiB apparent; refused from its headers."""
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    with (src / "disk.img").open("wb") as fh:
        fh.seek(10 * 2**30 - 1)
        fh.write(b"\0")
    (src / "notes.txt").write_text("small\n")
    archive = tmp_path / "vol.tar"
    subprocess.run(["tar", "--sparse", "-cf", str(archive), "-C", str(src), "notes.txt", "disk.img"], check=True)
    assert archive.stat().st_size < 2**20
    limit = tarsafe.volume_limit_bytes("1Gi", 0.1)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(LimitError) as err:
        safe_extract(archive, work / "vol", max_bytes=limit)
    text = str(err.value)
    assert f"limit of {limit} bytes (1.1 GiB)" in text and "'disk.img' of 10737418240 bytes" in text
    assert "sparse" in text and "volume_size_margin" in text
    assert list(work.iterdir()) == []  # no destination, no staging folder
    assert len(prescan(archive)) == 2  # without a limit the archive itself is fine


def test_the_size_limit_stops_at_the_first_member_past_it(tmp_path: Path) -> None:
    """The archive is cut after the second member: only an early stop sees no truncation."""
    whole = _write(tmp_path / "whole.tar", [_m("a", data=b"x" * 600), _m("b", data=b"y" * 600),
                                            _m("c", data=b"z" * 600)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[: 2 * (512 + 1024)])  # headers and data of a and b only
    with pytest.raises(DataMismatchError):
        prescan(cut)
    with pytest.raises(LimitError, match=r"member 'b' of 600 bytes brings it to 1200 bytes"):
        prescan(cut, max_bytes=1000)


def test_volume_limits_are_derived_from_the_claim_with_the_margin() -> None:
    assert tarsafe.volume_limit_bytes("2Gi", 0.0) == 2 * 2**30
    assert tarsafe.volume_limit_bytes("", 0.5) is None
    with pytest.raises(ParameterError):
        tarsafe.volume_limit_bytes("1Gi", -0.1)
    with pytest.raises(ParameterError):
        tarsafe.volume_limit_bytes("lots", 0.1)
