"""Session-wide test set-up: tools first on PATH, a private config folder, the real kubectl to build trees.

The Makefile puts ``.cache/tools/bin`` (promtool, sops… built from Go modules) first on ``PATH``; so does
this file, so a direct ``pytest`` run sees the same tools as ``make test``. Without it a distribution's
promtool may be found first: Debian's is built without ``kubernetes_sd_configs``, the data phase then
refuses the example's Prometheus config (as it should), and every test of a full run fails.

The demo's age identity lives in ``$XDG_CONFIG_HOME/k3smig/age/<environment>.txt``; tests get a
private config folder for the whole session, set when this file is loaded, before any kernel is
started, so kernels inherit it and the developer's own config folder is never touched.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from k3smig_lib.sandbox.binaries import default_bin_dir

TOOLS_BIN = Path(__file__).resolve().parents[1] / ".cache" / "tools" / "bin"
if TOOLS_BIN.is_dir():
    os.environ["PATH"] = f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="k3smig-test-config-")


@pytest.fixture
def short_tmp():
    """A private folder directly under /tmp: a TMPDIR short enough for the kernels' IPC socket paths.

    A Unix socket path holds 107 characters; pytest's ``tmp_path`` is too deep for a kernel folder's sockets
    (a run would put its kernel folder under /tmp instead, outside the test's TMPDIR).
    """
    folder = Path(tempfile.mkdtemp(prefix="k3smig-t-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def kustomize():
    """``kustomize(tree)``: build ``tree/manifests`` with the real kubectl and return the rendered YAML.

    kubectl is built from Go modules by tools/build-sandbox.sh; when it is missing the test fails and says so.
    """
    kubectl = default_bin_dir() / "kubectl"
    if not kubectl.is_file():
        pytest.fail(f"{kubectl} is missing: build it with `SANDBOX_GROUPS=kubectl bash tools/build-sandbox.sh`")

    def build(tree: Path) -> str:
        proc = subprocess.run([str(kubectl), "kustomize", str(tree / "manifests")], capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 0, f"kubectl kustomize {tree / 'manifests'} failed:\n{proc.stderr[-3000:]}"
        return proc.stdout

    return build
