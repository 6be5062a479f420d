"""The run's private kernel folder: where it goes so every IPC socket path fits, and what a later run removes."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from k3smig_lib.errors import K3sMigError
from k3smig_lib.runbook import kernels
from k3smig_lib.runbook.kernels import IPC_PATH_MAX, RunKernelManager, private_kernels, remove_stale


def deep_folder(base: Path, length: int) -> Path:
    folder = base
    while len(str(folder)) < length:
        folder /= "d" * 20
    folder.mkdir(parents=True)
    return folder


def test_the_kernel_folder_is_private_and_its_socket_paths_fit(short_tmp, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    with private_kernels() as env:
        runtime = Path(env["JUPYTER_RUNTIME_DIR"])
        assert runtime.parent.parent == short_tmp
        assert (runtime.stat().st_mode & 0o777) == (runtime.parent.stat().st_mode & 0o777) == 0o700
        os.environ.update(env)
        try:
            km = RunKernelManager(kernel_name="python3")
            assert km.transport == "ipc" and Path(km.ip).parent == runtime
            assert len(f"{km.ip}-pipe") <= IPC_PATH_MAX and Path(km.connection_file).parent == runtime
        finally:
            for key in env:
                os.environ.pop(key)
    assert list(short_tmp.iterdir()) == []


def test_a_tmpdir_too_deep_for_socket_paths_puts_the_folder_under_the_short_root(short_tmp, monkeypatch):
    deep = deep_folder(short_tmp, IPC_PATH_MAX - 40)  # room for a folder, not for its sockets
    short = short_tmp / "s"
    short.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    monkeypatch.setattr(kernels, "SHORT_ROOT", short)
    with private_kernels() as env:
        assert Path(env["JUPYTER_RUNTIME_DIR"]).parent.parent == short
    monkeypatch.setattr(kernels, "SHORT_ROOT", deep)
    with pytest.raises(K3sMigError, match=r"too deep for the kernels' sockets.*export TMPDIR=/tmp"):
        with private_kernels():
            pass
    assert list(deep.iterdir()) == []


def test_a_later_run_removes_the_folders_of_dead_runs_only(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f"k3smig-kernels-{gone.pid}-abcdefgh"
    (dead / "runtime").mkdir(parents=True)
    (dead / "runtime" / "0123abcd-1").write_text("")  # stands for a socket file the killed kernel left
    live = tmp_path / f"k3smig-kernels-{os.getpid()}-abcdefgh"
    live.mkdir()
    assert remove_stale(tmp_path) == [dead]
    assert not dead.exists() and live.is_dir()
