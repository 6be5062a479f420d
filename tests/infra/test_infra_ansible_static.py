"""The playbook and roles: ansible-lint (production), yamllint, syntax check, and the R14 conventions."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from infra_helpers import ANSIBLE_DIR, ROLE_SCENARIOS, ROLES, tool_env, venv_tool

pytestmark = pytest.mark.infra

TASK_FILES = ["main.yml", "pre_checks.yml", "state_present.yml", "state_absent.yml", "post_checks.yml"]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ANSIBLE_DIR, env=tool_env(), capture_output=True, text=True, timeout=600)


def test_ansible_lint_production_profile_is_clean() -> None:
    proc = _run(venv_tool("ansible-lint"), "--profile", "production", "--nocolor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_yamllint_is_clean() -> None:
    proc = _run(venv_tool("yamllint"), "--strict", ".")
    assert proc.returncode == 0, proc.stdout


def test_site_playbook_passes_the_syntax_check() -> None:
    proc = _run(venv_tool("ansible-playbook"), "-i", "inventory.example.yml", "site.yml", "--syntax-check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_site_playbook_installs_k3s_first_server_first_then_the_platform_once_then_day_two_everywhere() -> None:
    plays = yaml.safe_load((ANSIBLE_DIR / "site.yml").read_text())
    shape = [(p["hosts"], p.get("serial"), [r["role"] for r in p["roles"]]) for p in plays]
    assert shape == [
        ("k3s_servers[0]", None, ["k3s"]),
        ("k3s_servers[1:]", 1, ["k3s"]),  # joining servers one at a time: etcd keeps its quorum
        ("k3s_agents", None, ["k3s"]),
        ("k3s_servers[0]", None, ["helm", "ingress_nginx", "cert_manager", "external_dns"]),
        ("k3s_servers", None, ["system_upgrade"]),
        ("k3s_servers:k3s_agents", None, ["longhorn", "backup"]),
    ]
    assert all(p["roles"][0]["vars"]["k3s_upgrade_controller"] is True for p in plays[:3])
    assert set(r for _, _, roles in shape for r in roles) == set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_the_standard_layout_and_a_molecule_scenario_with_idempotence(role: str) -> None:
    base = ANSIBLE_DIR / "roles" / role
    for path in ["defaults/main.yml", "meta/main.yml", "meta/argument_specs.yml"] + [f"tasks/{f}" for f in TASK_FILES]:
        assert (base / path).is_file(), f"{role}: {path} missing"
    for where in ROLE_SCENARIOS[role]:
        owner, name = where.split("/")
        scenario = ANSIBLE_DIR / "roles" / owner / "molecule" / name
        for file in ("molecule.yml", "converge.yml", "verify.yml"):
            assert (scenario / file).is_file(), f"{role}: {where}/{file} missing"
        molecule = yaml.safe_load((scenario / "molecule.yml").read_text())
        assert "idempotence" in molecule["scenario"]["test_sequence"]
    main = (base / "tasks" / "main.yml").read_text()
    assert (
        main.index("pre_checks.yml") < main.index(f"state_{{{{ {role}_state }}}}.yml") < main.index("post_checks.yml")
    )


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_prefixed_and_each_has_a_comment_above(role: str) -> None:
    lines = (ANSIBLE_DIR / "roles" / role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Za-z_]\w*):", line)
        if m:
            assert m.group(1).startswith(f"{role}_"), f"{role}: {m.group(1)} is not prefixed"
            assert lines[i - 1].startswith("#"), f"{role}: {m.group(1)} has no comment line above it"


@pytest.mark.parametrize("role", ROLES)
def test_required_inputs_are_declared_and_have_no_default(role: str) -> None:
    base = ANSIBLE_DIR / "roles" / role
    options = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text()) or {}
    assert all(name.startswith(f"{role}_") for name in options)
    assert set(defaults) <= set(options), (
        f"{role}: defaults missing from argument_specs: {set(defaults) - set(options)}"
    )
    required = {name for name, spec in options.items() if spec.get("required")}
    assert not required & set(defaults), f"{role}: a required input has a default, so it is never required"


def test_no_task_claims_a_change_unconditionally_and_charts_are_pinned_atomic_and_waited() -> None:
    for path in (ANSIBLE_DIR / "roles").rglob("*.yml"):
        text = path.read_text()
        assert not re.search(r"changed_when:\s*true", text), path
    for role in ("ingress_nginx", "cert_manager", "external_dns"):
        release = yaml.safe_load((ANSIBLE_DIR / "roles" / role / "tasks" / "ensure_release.yml").read_text())
        helm = next(t["kubernetes.core.helm"] for t in release if "kubernetes.core.helm" in t)
        assert helm["atomic"] is True and helm["wait"] is True
        assert helm["chart_version"] == f"{{{{ {role}_chart_version }}}}"


def test_credential_tasks_use_no_log_and_values_never_enter_chart_values() -> None:
    secret_task = (ANSIBLE_DIR / "roles/external_dns/tasks/ensure_secret.yml").read_text()
    tasks = yaml.safe_load(secret_task)
    writes = [t for t in tasks if "kubernetes.core.k8s" in t and "definition" in t["kubernetes.core.k8s"]]
    assert writes and all(t.get("no_log") is True for t in writes)
    values = yaml.safe_load((ANSIBLE_DIR / "roles/external_dns/defaults/main.yml").read_text())["external_dns_values"]
    assert "scw_secret_key" not in yaml.safe_dump(values)
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in values["env"]} == {"{{ external_dns_credentials_secret }}"}
