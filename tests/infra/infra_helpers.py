"""Fixtures for the infrastructure tests: the built OpenTofu, its provider mirror, the Ansible tools.

A missing tool *fails* these tests with the command that provides it; nothing is skipped. `make test`
runs tools/build-infra.sh and tests/infra/molecule-image.sh first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "infrastructure" / "terraform"
ANSIBLE_DIR = REPO / "ansible"
CACHE = Path(os.environ.get("K3SMIG_INFRA_CACHE", REPO / ".cache" / "infra"))
VENV_BIN = Path(sys.executable).parent
ROLES = ["k3s", "helm", "ingress_nginx", "cert_manager", "external_dns", "system_upgrade", "longhorn", "backup"]
#: The Molecule scenarios (role/scenario) that converge each role twice (idempotence). Two share one converge:
#: k3s/cluster runs site.yml's K3s and day-2 roles on three servers and an agent, which is where the upgrade
#: Plans and Longhorn's node-spanning settings mean something.
ROLE_SCENARIOS = {
    "k3s": ["k3s/default", "k3s/cluster"],
    "helm": ["helm/default"],
    "ingress_nginx": ["ingress_nginx/default"],
    "cert_manager": ["cert_manager/default"],
    "external_dns": ["external_dns/default"],
    "system_upgrade": ["k3s/cluster"],
    "longhorn": ["k3s/cluster"],
    "backup": ["backup/default", "k3s/cluster"],
}
PROVIDER_VERSION = "2.81.0"
MOLECULE_IMAGE = "localhost/k3smig-host:bookworm"
HERE = Path(__file__).parent


@dataclass(frozen=True)
class Tofu:
    """The built tofu binary and the environment that points it at the offline provider mirror."""

    binary: str
    env: dict[str, str]

    def run(self, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.binary, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            pytest.fail(f"tofu {' '.join(args)} failed in {cwd}:\n{proc.stdout}\n{proc.stderr}")
        return proc


@pytest.fixture(scope="session")
def tofu(tmp_path_factory: pytest.TempPathFactory) -> Tofu:
    binary = CACHE / "bin" / "tofu"
    mirror = CACHE / "mirror" / "registry.opentofu.org" / "scaleway" / "scaleway" / PROVIDER_VERSION
    if not (binary.exists() and mirror.is_dir()):
        pytest.fail(f"OpenTofu or the Scaleway provider mirror is missing under {CACHE}: run tools/build-infra.sh")
    # The cache is shared by every clone, and its tofurc names the mirror by the path of the clone that built
    # it last, which may not exist here: the tests write their own, with this clone's path to the mirror.
    rc = tmp_path_factory.mktemp("tofu") / "tofurc"
    rc.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{(CACHE / "mirror").resolve()}"\n'
                  "  }\n}\n")
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(rc),
        TF_IN_AUTOMATION="1",
        CHECKPOINT_DISABLE="1",
        PATH=f"{binary.parent}{os.pathsep}{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return Tofu(binary=str(binary), env=env)


@pytest.fixture
def terraform_copy(tmp_path: Path) -> Path:
    """A copy of infrastructure/terraform, so init never writes .terraform or lock files into the repo."""
    dest = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, dest, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", ".k3smig.*"))
    return dest


@pytest.fixture
def tofu_on_path(tofu: Tofu, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tofu]:
    """Put the built tofu first on PATH for the python-terraform driver (it reads os.environ)."""
    for key in ("PATH", "TF_CLI_CONFIG_FILE", "TF_IN_AUTOMATION", "CHECKPOINT_DISABLE"):
        monkeypatch.setenv(key, tofu.env[key])
    yield tofu


def venv_tool(name: str) -> str:
    """Path of an Ansible tool installed in the test interpreter's venv; fail with the fix if absent."""
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(
            f"{name} is not installed in {VENV_BIN}: pip install ansible-core ansible ansible-lint "
            "molecule 'molecule-plugins[podman]' yamllint"
        )
    return str(path)


def tool_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["NO_COLOR"] = "1"
    return env


def molecule_env() -> dict[str, str]:
    """Tool environment plus the podman settings this sandbox needs (runc, no ulimits)."""
    env = tool_env()
    env["CONTAINERS_CONF"] = str(HERE / "containers.conf")
    env["PYTHONUNBUFFERED"] = "1"  # Molecule's stdout (Ansible) and stderr (its steps) keep their order in one pipe
    return env


@pytest.fixture(scope="session")
def molecule_image() -> str:
    """The Debian 12 image, built offline by molecule-image.sh when it is not there yet."""
    for tool in ("podman", "runc", "debootstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install podman runc debootstrap")
    proc = subprocess.run(
        ["bash", str(HERE / "molecule-image.sh")], env=molecule_env(), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return MOLECULE_IMAGE
