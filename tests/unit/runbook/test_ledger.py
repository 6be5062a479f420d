import json

import pytest

from k3smig_lib.errors import LedgerError
from k3smig_lib.runbook.ledger import chain_record, verify, write_ledger


def _run(tmp_path):
    run = tmp_path / "20261126T070000Z-demo"
    (run / "artifacts" / "40_export_manifests").mkdir(parents=True)
    (run / "00_preflight.ipynb").write_text('{"cells": []}')
    (run / "artifacts" / "40_export_manifests" / "custody.csv").write_text("object,sha\nDeployment/a/b,1\n")
    records = [chain_record("", {"phase": "00_preflight", "status": "Completed"})]
    records.append(chain_record(records[-1]["hash"], {"phase": "40_export_manifests", "status": "Completed"}))
    write_ledger(run, {"run_id": run.name}, records)
    return run


def test_an_untouched_run_verifies(tmp_path):
    assert verify(_run(tmp_path)) == []


def test_one_changed_byte_in_an_artifact_fails(tmp_path):
    run = _run(tmp_path)
    path = run / "artifacts" / "40_export_manifests" / "custody.csv"
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    assert verify(run) == ["changed: artifacts/40_export_manifests/custody.csv"]


def test_added_and_missing_files_are_reported(tmp_path):
    run = _run(tmp_path)
    (run / "00_preflight.ipynb").unlink()
    (run / "extra.txt").write_text("x")
    assert sorted(verify(run)) == ["added after the run: extra.txt", "missing: 00_preflight.ipynb"]


def test_rewriting_a_phase_record_breaks_the_chain_even_if_rehashed(tmp_path):
    run = _run(tmp_path)
    ledger = json.loads((run / "run.json").read_text())
    ledger["phases"][0]["status"] = "Failed"
    (run / "run.json").write_text(json.dumps(ledger))
    problems = verify(run)
    assert any("ledger_hash" in p for p in problems)
    assert any("breaks the hash chain" in p for p in problems)


def test_a_missing_ledger_is_a_clear_error(tmp_path):
    with pytest.raises(LedgerError, match="cannot read the ledger"):
        verify(tmp_path)
