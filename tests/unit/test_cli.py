import base64
import json
import subprocess
import sys
from pathlib import Path

import pyrage
import pytest
import yaml

from k3smig_lib.backends.snapshot import read_export
from k3smig_lib.cli import main
from k3smig_lib.core.config import BUNDLED_EXAMPLE
from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.secrets import secret_values


def test_clean_writes_manifests_and_a_rule_report_without_secret_values(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(out)]) == 0
    assert "objects read" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    dropped = {r["object"]: r["rules"] for r in report if r["dropped"]}
    assert any(obj.startswith("Pod/") and "W1" in rules for obj, rules in dropped.items())
    assert (out / "manifests" / "kustomization.yaml").is_file()
    values = secret_values(read_export(BUNDLED_EXAMPLE / "manifests"))
    assert len(values) > 10
    assert scan(out, values).ok


def secrets_export(folder):
    """An export with two Secrets (data, stringData, values in the last-applied annotation) and a ConfigMap."""
    import base64

    def b64(text):
        return base64.b64encode(text.encode()).decode()

    last_applied = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-credentials"},
                               "stringData": {"password": "old-Pa55word-in-annotation"}})
    objects = [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": "db-credentials", "namespace": "shop",
                      "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied}},
         "data": {"password": b64("S3cret-db-password!")}, "stringData": {"api-token": "tok-3f9c1e7a55d04b2e"}},
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "tls-cert", "namespace": "web"},
         "data": {"key": b64("-----BEGIN PRIVATE KEY-----MIIEvQIBADAN")}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
         "data": {"mode": "production"}},
    ]
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all(objects))
    return folder


def test_clean_without_a_recipient_writes_secret_generators_and_names_them(tmp_path, capsys):
    export = secrets_export(tmp_path / "export")
    out = tmp_path / "out"
    assert main(["clean", str(export), str(out)]) == 0  # complete and safe: a warning, not a failure
    captured = capsys.readouterr()
    assert "2 Secret(s) written as secretGenerator entries" in captured.out
    notice = captured.err
    assert notice.count("\n") == 1
    assert notice.startswith("k3smig: warning: no --age-recipient given, so 2 Secret(s) were written as kustomize")
    assert "shop/db-credentials, web/tls-cert" in notice
    assert f"k3smig clean {export} NEW_OUT --age-recipient age1" in notice
    values = secret_values(read_export(export))
    assert {b"S3cret-db-password!", b"tok-3f9c1e7a55d04b2e", b"old-Pa55word-in-annotation"} <= values
    assert scan(out, values).ok, scan(out, values)  # no value in any form anywhere in the output folder
    db = yaml.safe_load(next((out / "manifests").rglob("secret-db-credentials*.yaml")).read_text())
    assert db["kind"] == "SecretGenerator" and "data" not in db and "stringData" not in db
    assert db["files"] == ["api-token=secret-values/shop/db-credentials/api-token",
                           "password=secret-values/shop/db-credentials/password"]
    assert "--age-recipient age1" in db["metadata"]["annotations"]["k3smig.io/values-omitted"]
    index = yaml.safe_load((out / "manifests" / "kustomization.yaml").read_text())
    assert sorted(index["generators"]) == sorted(str(p.relative_to(out / "manifests"))
                                                 for p in (out / "manifests").rglob("secret-*.yaml"))
    assert not any("secret-" in r for r in index["resources"])
    assert "manifests/secret-values/" in (out / ".gitignore").read_text().splitlines()
    report = {r["object"]: r for r in json.loads((out / "report.json").read_text())}
    assert "no --age-recipient" in report["Secret/shop/db-credentials"]["warnings"][0]
    assert "warnings" not in report["ConfigMap/shop/settings"]


def test_a_secret_generator_applies_only_once_its_values_are_filled_in(tmp_path, capsys):
    # what `kubectl apply -k` would send, built by the real kustomize inside kubectl: nothing while a value
    # file is missing (never an empty credential), then the Secret under its own name with the values given
    from k3smig_lib.sandbox.binaries import default_bin_dir

    kubectl = default_bin_dir() / "kubectl"
    assert kubectl.is_file(), f"{kubectl} is missing: `SANDBOX_GROUPS=kubectl bash tools/build-sandbox.sh` builds it"
    out = tmp_path / "out"
    assert main(["clean", str(secrets_export(tmp_path / "export")), str(out)]) == 0
    capsys.readouterr()

    def build() -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(kubectl), "kustomize", str(out / "manifests")], capture_output=True, text=True,
                              timeout=120, check=False)

    refused = build()
    assert refused.returncode != 0 and "secret-values/shop/db-credentials" in refused.stderr
    values = out / "manifests" / "secret-values"
    for rel, value in {"shop/db-credentials/password": "filled-pw", "shop/db-credentials/api-token": "filled-tok",
                       "web/tls-cert/key": "filled-key"}.items():
        (values / rel).parent.mkdir(parents=True, exist_ok=True)
        (values / rel).write_text(value)
    built = build()
    assert built.returncode == 0, built.stderr
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(built.stdout)}
    db = docs[("Secret", "db-credentials")]
    assert db["metadata"]["namespace"] == "shop" and db["type"] == "Opaque"
    assert {k: base64.b64decode(v).decode() for k, v in db["data"].items()} == {"password": "filled-pw",
                                                                                 "api-token": "filled-tok"}
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (db["metadata"].get("annotations") or {})
    assert ("ConfigMap", "settings") in docs


def test_the_unsealed_notice_names_twenty_secrets_and_counts_the_rest(tmp_path):
    from k3smig_lib.cleancli import unsealed_notice

    notice = unsealed_notice([f"ns/s{i}" for i in range(25)], Path("export"), Path("out"))
    assert "ns/s19 and 5 more" in notice and "ns/s20" not in notice and "so 25 Secret(s) were written" in notice


def test_clean_with_a_recipient_names_no_secret_and_writes_no_value(tmp_path, capsys):
    export = secrets_export(tmp_path / "export")
    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "out"
    assert main(["clean", str(export), str(out), "--age-recipient", str(identity.to_public())]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "Secrets sealed for the recipient" in captured.out
    assert scan(out, secret_values(read_export(export))).ok


def test_clean_seals_secrets_for_an_age_recipient(tmp_path):
    identity = pyrage.x25519.Identity.generate()
    out = tmp_path / "sealed"
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(out),
                 "--age-recipient", str(identity.to_public())]) == 0
    secrets = list((out / "manifests").rglob("secret-*.yaml"))
    assert secrets and all("ENC[AES256_GCM," in p.read_text() for p in secrets)


def test_clean_refuses_a_non_empty_output_folder(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "is not empty" in err and "to fix this" in err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_clean_explains_a_bad_recipient(tmp_path, capsys):
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(tmp_path / "o"), "--age-recipient", "bob"]) == 2
    assert "is not an age recipient" in capsys.readouterr().err


def test_clean_arguments_of_an_export_and_of_a_live_cluster_are_usage_errors_when_mixed(tmp_path, capsys):
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests")]) == 2
    assert "needs EXPORT and OUT" in capsys.readouterr().err
    assert main(["clean", "--context", "src", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "give only the output folder" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_clean_of_a_missing_export_is_one_readable_line_and_a_usage_error(tmp_path, capsys):
    assert main(["clean", str(tmp_path / "nope"), str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_run_without_parameters_file_says_how(capsys):
    assert main(["run"]) == 2
    assert "k3smig run parameters/" in capsys.readouterr().err


def test_verify_of_a_folder_without_ledger_fails_cleanly(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 1
    assert "cannot read the ledger" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_every_unknown_option_is_named_at_once_and_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "parameters/demo.yaml", "--phses", "30", "--dry"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--phses" in err and "--dry" in err


def test_a_missing_parameters_file_is_a_usage_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml"), "--runs", str(tmp_path / "runs")]) == 2
    assert "nope.yaml" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_every_unknown_parameter_of_a_file_is_reported_at_once_with_exit_2(tmp_path, capsys):
    params = tmp_path / "typos.yaml"
    params.write_text("enviroment: demo\naply: false\nfrobnicate: 1\n")
    assert main(["run", str(params), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "3 unknown parameters" in err
    for fix in ("rename 'enviroment' to 'environment'", "rename 'aply' to 'apply'", "remove 'frobnicate'"):
        assert fix in err
    assert not (tmp_path / "runs").exists()


def test_a_missing_run_folder_is_a_usage_error_for_verify_and_resume(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "gone")]) == 2
    assert main(["run", "--resume", str(tmp_path / "gone")]) == 2
    err = capsys.readouterr().err
    assert err.count("does not exist") == 2


def test_a_failure_that_is_not_a_usage_error_still_exits_1(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(tmp_path)]) == 1


OPENSHIFT = Path(__file__).resolve().parents[1] / "fixtures" / "openshift"


def fill_secret_values(out: Path) -> int:
    """Put a value in every file the tree's secret generators read, as a user would; return how many."""
    manifests = out / "manifests"
    index = yaml.safe_load((manifests / "kustomization.yaml").read_text())
    count = 0
    for rel in index.get("generators") or []:
        for entry in yaml.safe_load((manifests / rel).read_text())["files"]:
            path = manifests / entry.split("=", 1)[1]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("value filled in by the operator")
            count += 1
    return count


def test_clean_of_the_bundled_example_builds_with_kustomize(tmp_path, kustomize):
    out = tmp_path / "out"
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert fill_secret_values(out) > 10  # the example's Secrets: kustomize refuses until their values are there
    rendered = [d for d in yaml.safe_load_all(kustomize(out)) if d]
    assert len(rendered) == sum(1 for r in report if not r["dropped"])


def test_clean_of_an_openshift_project_drops_its_defaults_and_builds(tmp_path, kustomize, capsys):
    out = tmp_path / "out"
    assert main(["clean", str(OPENSHIFT), str(out)]) == 0
    summary = capsys.readouterr().out
    assert "1 OpenShift Route(s) kept, which K3s does not serve" in summary
    report = json.loads((out / "report.json").read_text())
    fate = {(r["apiVersion"], r["object"]): (r["dropped"], r["rules"]) for r in report}
    for group in ("rbac.authorization.k8s.io/v1", "authorization.openshift.io/v1"):
        for name in ("system:deployers", "system:image-builders", "system:image-pullers"):
            assert fate[(group, f"RoleBinding/crane-complex-demo/{name}")] == (True, ["W12"])
    assert fate[("v1", "ServiceAccount/crane-complex-demo/builder")] == (True, ["W12"])
    assert fate[("v1", "ServiceAccount/crane-complex-demo/deployer")] == (True, ["W12"])
    assert "K26" in fate[("v1", "ServiceAccount/crane-complex-demo/app-sa")][1]
    route = next(r for r in report if r["object"] == "Route/openshift-console/console")
    assert route["equivalent_ingress"]["spec"]["rules"][0]["host"] == "console-openshift-console.apps-crc.testing"
    fill_secret_values(out)
    rendered = [d for d in yaml.safe_load_all(kustomize(out)) if d]
    assert len(rendered) == sum(1 for r in report if not r["dropped"])
    app_sa = next(d for d in rendered if d["kind"] == "ServiceAccount")
    assert "imagePullSecrets" not in app_sa


def test_clean_of_an_export_where_everything_is_dropped_writes_an_empty_valid_tree(tmp_path, kustomize):
    export = tmp_path / "export"
    export.mkdir()
    (export / "nodes.yaml").write_text("apiVersion: v1\nkind: Node\nmetadata: {name: pool-a-1}\n---\n"
                                       "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n")
    out = tmp_path / "out"
    assert main(["clean", str(export), str(out)]) == 0
    assert yaml.safe_load((out / "manifests" / "kustomization.yaml").read_text())["resources"] == []
    assert kustomize(out).strip() in ("", "{}")
    assert [r["dropped"] for r in json.loads((out / "report.json").read_text())] == [True, True]


@pytest.mark.parametrize(("text", "fragment"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: a}\n", "document 2 (line 5): ConfigMap (no name)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + "x" * 300 + ", namespace: a}\n",
     "is not a DNS-1123 subdomain"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: a}\ndata:\n  k: 1\n  k: 2\n",
     "bad.yaml: line 10, column 3: duplicate key 'k'"),
])
def test_clean_refuses_bad_input_before_writing_anything(tmp_path, capsys, text, fragment):
    export = tmp_path / "export"
    export.mkdir()
    (export / "bad.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n" + text)
    assert main(["clean", str(export), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "bad.yaml" in err and fragment in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


def test_clean_shortens_long_names_and_a_failed_write_leaves_nothing_behind(tmp_path, kustomize):
    export = tmp_path / "export"
    export.mkdir()
    long_name = "a" * 250
    (export / "cm.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {long_name}, namespace: a}}\n"
                                    "data: {k: " + "v" * 5000 + "}\n")
    out = tmp_path / "out"
    script = ("import resource, signal, sys\nfrom k3smig_lib.cli import main\n"
              "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))\n"
              f"sys.exit(main(['clean', {str(export)!r}, {str(out)!r}]))\n")
    failed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert failed.returncode == 1 and "cannot write" in failed.stderr, failed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no output, no staging folder
    assert main(["clean", str(export), str(out)]) == 0  # the re-run is not blocked
    files = [p.name for p in (out / "manifests").rglob("configmap-*.yaml")]
    assert len(files) == 1 and len(files[0]) < 200
    assert next(yaml.safe_load_all(kustomize(out)))["metadata"]["name"] == long_name


def test_clean_removes_the_staging_folder_of_a_killed_run(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f".out.k3smig-staging-{gone.pid}-abcd1234"
    (stale / "manifests").mkdir(parents=True)
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(tmp_path / "out")]) == 0
    assert not stale.exists() and (tmp_path / "out" / "report.json").is_file()


def test_clean_says_when_the_export_is_a_file(tmp_path, capsys):
    path = tmp_path / "export.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    assert main(["clean", str(path), str(tmp_path / "o")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


def test_the_console_script_skips_the_iri_grammar_and_still_validates_notebooks():
    # the k3smig process marks rfc3987_syntax absent (its grammar costs ~1.7 s at import): nbformat,
    # through jsonschema, must still load, validate a phase notebook and refuse a broken one
    code = (
        "import sys\n"
        "from k3smig_lib import cli\n"
        "cli._skip_unneeded_imports()\n"
        "import nbformat\n"
        "nb = nbformat.read('notebooks/00_preflight.ipynb', as_version=4)\n"
        "nbformat.validate(nb)\n"
        "nb.cells[0]['cell_type'] = 'bogus'\n"
        "try:\n"
        "    nbformat.validate(nb)\n"
        "except nbformat.ValidationError:\n"
        "    print('refused')\n"
        "print(sys.modules.get('rfc3987_syntax', 'absent'))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["refused", "None"]


def test_only_the_sandbox_subcommand_loads_the_sandbox():
    # the sandbox is a development and test component: an import-linter contract keeps every module a
    # migration runs off it, and the CLI imports it inside `k3smig sandbox` only, so `k3smig run` never loads it
    code = ("import sys\nfrom k3smig_lib import cli\nimport k3smig_lib.runbook.runner\n"
            "print(sorted(m for m in sys.modules if m.startswith('k3smig_lib.sandbox')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
