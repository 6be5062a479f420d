"""The leak gate says where a leaked value came from, and who has to act."""

import base64
import json

import pytest

from k3smig_lib.core.leakgate import scan
from k3smig_lib.errors import SecretLeakError
from k3smig_lib.runbook.leaks import Redactor, gate, plain_copies, source_values

PASSWORD = "correct-horse-battery-staple-42"
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
          "data": {"password": base64.b64encode(PASSWORD.encode()).decode()}}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "shop"},
             "data": {"DB_URL": f"postgres://app:{PASSWORD}@db:5432/app"}}


def leaking_run(tmp_path):
    run = tmp_path / "runs" / "20250101T000000Z-ci"
    (run / "artifacts" / "30_inventory_source").mkdir(parents=True)
    (run / "artifacts" / "30_inventory_source" / "configmaps.csv").write_text(f"DB_URL,{PASSWORD}\n")
    (run / "30_inventory_source.html").write_text("<p>clean</p>")
    return run


def test_a_secret_value_the_source_also_keeps_in_a_configmap_is_a_user_fix(tmp_path):
    run = leaking_run(tmp_path)
    values = source_values([SECRET, CONFIGMAP])
    with pytest.raises(SecretLeakError) as err:
        gate(run, scan(run, values), values, [SECRET, CONFIGMAP])
    text = str(err.value)
    assert text.startswith("values of Secret shop/db, also stored in plain text in ConfigMap shop/settings")
    assert "artifacts/30_inventory_source/configmaps.csv" in text
    assert "fix in the source, not in k3smig" in text and "fix it in k3smig_lib" not in text
    assert PASSWORD not in text


def test_a_value_found_nowhere_else_in_the_source_is_a_k3smig_bug(tmp_path):
    run = leaking_run(tmp_path)
    values = source_values([SECRET])
    with pytest.raises(SecretLeakError, match="report it as a k3smig bug"):
        gate(run, scan(run, values), values, [SECRET])


def test_the_quarantined_run_is_private_and_lists_file_paths_only(tmp_path):
    run = leaking_run(tmp_path)
    values = source_values([SECRET, CONFIGMAP])
    with pytest.raises(SecretLeakError):
        gate(run, scan(run, values), values, [SECRET, CONFIGMAP])
    moved = run.with_name(run.name + ".quarantined")
    note = (moved / "QUARANTINED.txt").read_text()
    assert note.endswith("Files holding secret values (1):\n- artifacts/30_inventory_source/configmaps.csv\n")
    assert PASSWORD not in note
    for path in [moved, *moved.rglob("*")]:
        assert path.stat().st_mode & 0o777 == (0o700 if path.is_dir() else 0o600), path


def test_plain_copies_match_values_inside_strings_only_in_non_secret_objects():
    assert plain_copies(PASSWORD.encode(), [SECRET, CONFIGMAP]) == ["ConfigMap shop/settings"]
    assert plain_copies(b"not-anywhere-at-all", [SECRET, CONFIGMAP]) == []



def test_the_redactor_removes_a_value_in_every_form_the_gate_knows_and_names_whose_it_was(tmp_path):
    redact = Redactor({PASSWORD.encode(): "Secret shop/db", "äöüßäöü".encode(): "Secret shop/umlaut",
                       b"short": "Secret shop/short"})
    as_json = json.dumps(f"{PASSWORD}\n")
    text = (f"raw {PASSWORD}; base64 {base64.b64encode(PASSWORD.encode()).decode()}; inside a blob "
            f"{base64.b64encode(b'user:' + PASSWORD.encode()).decode()}; json {as_json}; "
            "multibyte äöüßäöü; short")
    clean, labels = redact(text)
    assert labels == ["Secret shop/db", "Secret shop/umlaut"]
    assert "äöüßäöü" not in clean and clean.endswith("; short")  # 14 bytes in 7 characters; under 8 bytes: left
    (tmp_path / "clean.txt").write_text(clean)
    assert scan(tmp_path, {PASSWORD.encode(): "Secret shop/db"}).ok  # the gate finds nothing left, in any form
    assert redact("nothing secret here") == ("nothing secret here", [])
