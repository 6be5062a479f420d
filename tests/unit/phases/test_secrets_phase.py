"""Phase 50's fingerprint key: one key per run makes fingerprints comparable; without one the phase says so."""

from pathlib import Path

from k3smig_lib.core.config import Settings
from k3smig_lib.core.secrets import RUN_KEY_ENV, generate_run_key
from k3smig_lib.phases import secrets

PER_PROCESS = "fingerprint key is per process (run through `k3smig run` to compare across phases)"


def _ledger(tmp_path: Path, name: str) -> tuple[secrets.Secrets, list[str]]:
    cfg = Settings(environment="t", run_dir=str(tmp_path / name), target_dir=str(tmp_path / f"{name}-target"))
    phase = secrets.start(cfg)
    frame = phase.ledger()
    return phase, [f for f in frame["fingerprint"] if f]


def test_without_a_run_key_the_ledger_warns_that_fingerprints_are_per_process(tmp_path, monkeypatch):
    monkeypatch.delenv(RUN_KEY_ENV, raising=False)
    phase, _ = _ledger(tmp_path, "run")
    assert phase.fp.ephemeral and phase.warnings == [PER_PROCESS]


def test_with_one_run_key_two_phases_fingerprint_alike_and_nothing_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv(RUN_KEY_ENV, generate_run_key())
    first, fingerprints = _ledger(tmp_path, "a")
    second, again = _ledger(tmp_path, "b")
    assert fingerprints and fingerprints == again
    assert first.warnings == second.warnings == [] and first.fp.key_id == second.fp.key_id
