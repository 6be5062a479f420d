import json

import pyrage
import pytest

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
    assert main(["clean", str(BUNDLED_EXAMPLE / "manifests"), str(tmp_path / "o"), "--age-recipient", "bob"]) == 1
    assert "is not an age recipient" in capsys.readouterr().err


def test_clean_of_a_missing_export_is_one_readable_line(tmp_path, capsys):
    assert main(["clean", str(tmp_path / "nope"), str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err


def test_run_without_parameters_file_says_how(capsys):
    assert main(["run"]) == 1
    assert "k3smig run parameters/" in capsys.readouterr().err


def test_verify_of_a_folder_without_ledger_fails_cleanly(tmp_path, capsys):
    assert main(["verify", str(tmp_path)]) == 1
    assert "cannot read the ledger" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2
