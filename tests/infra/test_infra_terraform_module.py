"""The Scaleway VM module: formatting, validation against the real provider, plan tests, conventions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from infra_helpers import PROVIDER_VERSION, TERRAFORM_DIR, Tofu

pytestmark = pytest.mark.infra

VM = TERRAFORM_DIR / "modules" / "vm"
ROOT_MODULES = ["modules/vm", "modules/vm/examples/minimal", "envs/scaleway", "examples/local-only"]


def _blocks(text: str, kind: str) -> dict[str, str]:
    """Return {name: body} of every top-level ``kind "name" { … }`` block (brace matching)."""
    found: dict[str, str] = {}
    for m in re.finditer(rf'^{kind} "([^"]+)" \{{', text, re.MULTILINE):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found[m.group(1)] = text[m.end() : i - 1]
    return found


def _tf_files(folder: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(folder.glob("*.tf")))


def test_terraform_files_are_formatted(tofu: Tofu) -> None:
    proc = tofu.run("fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR), cwd=TERRAFORM_DIR, check=False)
    assert proc.returncode == 0, f"run `tofu fmt -recursive infrastructure/terraform`:\n{proc.stdout}"


@pytest.mark.parametrize("module", ROOT_MODULES)
def test_module_validates_against_the_real_scaleway_provider(tofu: Tofu, terraform_copy: Path, module: str) -> None:
    workdir = terraform_copy / module
    tofu.run("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    proc = tofu.run("validate", "-json", "-no-color", cwd=workdir, check=False)
    report = json.loads(proc.stdout)
    assert report["valid"], json.dumps(report["diagnostics"], indent=1)
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=1)


def test_init_takes_the_provider_built_here_from_the_filesystem_mirror(tofu: Tofu, terraform_copy: Path) -> None:
    workdir = terraform_copy / "envs" / "scaleway"
    proc = tofu.run("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    assert f"Installed scaleway/scaleway v{PROVIDER_VERSION}" in proc.stdout
    assert "unauthenticated" in proc.stdout  # a local build carries no registry signature
    schema = json.loads(tofu.run("providers", "schema", "-json", cwd=workdir).stdout)
    (provider,) = schema["provider_schemas"].values()
    server = provider["resource_schemas"]["scaleway_instance_server"]["block"]
    assert {"type", "image", "ip_id", "security_group_id", "user_data"} <= set(server["attributes"])
    assert "root_volume" in server["block_types"]


def test_plan_tests_pass_with_a_mocked_provider_including_one_failure_per_validation(
    tofu: Tofu, terraform_copy: Path
) -> None:
    workdir = terraform_copy / "modules" / "vm"
    tofu.run("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    proc = tofu.run("test", "-no-color", cwd=workdir, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validations = sum(len(re.findall(r"\bvalidation \{", b)) for b in _blocks(_tf_files(VM), "variable").values())
    runs = len(re.findall(r'^run "', (VM / "tests" / "vm.tftest.hcl").read_text(), re.MULTILINE))
    assert re.search(rf"Success! {runs} passed, 0 failed", proc.stdout), proc.stdout
    # Four single-VM runs, then counts 1/3 x agents 0/2 and the load balancer; one failure per validation.
    assert runs == validations + 9


def _plan_of_run(verbose: str, run: str) -> str:
    """The resource changes `tofu test -verbose` printed for one run block (actions list to the Plan: line)."""
    block = verbose.split(f'run "{run}"... pass', 1)[1].split('\n  run "', 1)[0]
    start = block.index("OpenTofu will perform the following actions:")
    end = block.index("\n", block.index("\nPlan: ") + 1)
    return block[start:end + 1]


def test_one_server_keeps_the_plan_it_had_before_multi_node_support(tofu: Tofu, terraform_copy: Path) -> None:
    """server_count = 1, agent_count = 0: resource for resource, attribute for attribute, today's plan.

    The fixture is the plan of the defaults run recorded with the single-VM module (before the
    server_count/agent_count/private network/load balancer inputs); the mock provider's generated values
    are seeded, so the text is stable.
    """
    workdir = terraform_copy / "modules" / "vm"
    tofu.run("init", "-backend=false", "-input=false", "-no-color", cwd=workdir)
    proc = tofu.run("test", "-no-color", "-verbose", "-filter=tests/vm.tftest.hcl", cwd=workdir, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    expected = (Path(__file__).parent / "fixtures" / "vm-one-server-plan.txt").read_text()
    assert _plan_of_run(proc.stdout, "defaults_match_the_seed_vm") == expected
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in expected


def test_every_validation_block_has_an_expect_failures_run() -> None:
    variables = _blocks(_tf_files(VM), "variable")
    validated = {name for name, body in variables.items() if "validation {" in body}
    tests = (VM / "tests" / "vm.tftest.hcl").read_text()
    expected = set(re.findall(r"expect_failures = \[var\.(\w+)\]", tests))
    assert validated == expected


def test_every_validation_message_names_its_variable() -> None:
    for name, body in _blocks(_tf_files(VM), "variable").items():
        for message in re.findall(r'error_message = "([^"]+)"', body):
            assert f"var.{name}" in message, f"{name}: {message}"


@pytest.mark.parametrize("module", ["modules/vm", "envs/scaleway"])
def test_every_variable_and_output_is_typed_and_described(module: str) -> None:
    text = _tf_files(TERRAFORM_DIR / module)
    variables = _blocks(text, "variable")
    outputs = _blocks(text, "output")
    assert variables and outputs
    for name, body in variables.items():
        assert re.search(r"^\s+type\s+=", body, re.MULTILINE), f"variable {name} has no type"
        assert re.search(r"^\s+description\s+=", body, re.MULTILINE), f"variable {name} has no description"
    for name, body in outputs.items():
        assert re.search(r"^\s+description\s+=", body, re.MULTILINE), f"output {name} has no description"


def test_module_keeps_the_standard_layout_and_pins_only_the_scaleway_provider() -> None:
    files = {p.name for p in VM.glob("*.tf")}
    assert {"versions.tf", "variables.tf", "main.tf", "locals.tf", "outputs.tf"} <= files
    versions = (VM / "versions.tf").read_text()
    assert re.findall(r'source\s+=\s+"([^"]+)"', versions) == ["scaleway/scaleway"]
    assert 'resource "scaleway_instance_server" "this"' in (VM / "main.tf").read_text()


def test_env_root_module_passes_every_module_variable_through() -> None:
    module_vars = set(_blocks(_tf_files(VM), "variable"))
    env = TERRAFORM_DIR / "envs" / "scaleway"
    assert set(_blocks(_tf_files(env), "variable")) == module_vars
    call = (env / "main.tf").read_text()
    for name in module_vars:
        assert re.search(rf"^\s+{name}\s+= var\.{name}$", call, re.MULTILINE), name


def test_module_readme_documents_every_input_and_output_between_the_markers() -> None:
    readme = (VM / "README.md").read_text()
    docs = readme[readme.index("<!-- BEGIN_TF_DOCS -->") : readme.index("<!-- END_TF_DOCS -->")]
    text = _tf_files(VM)
    for name in [*_blocks(text, "variable"), *_blocks(text, "output")]:
        assert f"| `{name}` |" in docs, name
