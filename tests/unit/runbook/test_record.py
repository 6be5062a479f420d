"""The signed run record: real Ed25519 keys, real DSSE envelopes, checked by an independent implementation."""

import base64
import json
import os
import socket
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from k3smig_lib.cli import main
from k3smig_lib.core import signing
from k3smig_lib.runbook.ledger import ENVELOPE, chain_record, write_ledger
from k3smig_lib.runbook.record import PUBLIC_KEY, sign_run, signing_facts, verify_run, write_public_key


def _run(tmp_path):
    run = tmp_path / "runs" / "20261126T070000Z-demo"
    (run / "artifacts" / "40_export_manifests").mkdir(parents=True)
    (run / "40_export_manifests.html").write_text("<!doctype html><title>40</title><p>PASS</p>")
    (run / "artifacts" / "40_export_manifests" / "custody.csv").write_text("object,sha\nDeployment/a/b,1\n")
    records = [chain_record("", {"phase": "40_export_manifests", "status": "Completed", "warnings": []})]
    header = {"run_id": run.name, "verdict": "PASS", "parameters": {"environment": "demo"}}
    header["signing"] = signing_facts(write_public_key(run))
    write_ledger(run, header, records)
    sign_run(run)
    return run, header, records


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "keys" / "own.pem"))
    return tmp_path / "keys" / "own.pem"


def test_a_signed_run_verifies_and_its_key_lives_outside_the_run_with_mode_0600(tmp_path, own_key):
    run, header, _ = _run(tmp_path)
    assert verify_run(run) == []
    assert own_key.is_file() and stat.S_IMODE(own_key.stat().st_mode) == 0o600
    assert run not in own_key.parents
    assert not any(b"PRIVATE KEY" in p.read_bytes() for p in run.rglob("*") if p.is_file())
    assert header["signing"]["keyid"] == signing.keyid(signing.load_public(run / PUBLIC_KEY))


def test_an_independent_dsse_implementation_verifies_the_envelope(tmp_path, own_key):
    run, _, _ = _run(tmp_path)
    data = json.loads((run / ENVELOPE).read_text())
    public = signing.load_public(run / PUBLIC_KEY)
    key = SSlibKey.from_crypto(public, keyid=signing.keyid(public))
    envelope = Envelope.from_dict(data)
    accepted = envelope.verify([key], 1)
    assert list(accepted) == [signing.keyid(public)]
    statement = json.loads(base64.b64decode(data["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    names = {s["name"] for s in statement["subject"]}
    assert {"run.json", "40_export_manifests.html", "artifacts/40_export_manifests/custody.csv", PUBLIC_KEY} <= names
    assert statement["predicate"]["verdict"] == "PASS"


def test_a_ledger_rewritten_without_the_key_fails(tmp_path, own_key):
    run, header, records = _run(tmp_path)
    (run / "40_export_manifests.html").write_text("<!doctype html><title>40</title><p>all good, trust me</p>")
    write_ledger(run, header, records)  # every hash and the chain recomputed, as a forger would
    problems = verify_run(run)
    assert "differs from the signed record: 40_export_manifests.html" in problems
    assert "differs from the signed record: run.json" in problems


def test_a_run_re_signed_by_an_unknown_key_fails(tmp_path, own_key, monkeypatch):
    run, header, records = _run(tmp_path)
    (run / "40_export_manifests.html").write_text("<p>forged</p>")
    write_ledger(run, header, records)
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "forger.pem"))
    sign_run(run)  # the forger signs with a key of their own
    monkeypatch.setenv(signing.KEY_ENV, str(own_key))
    problems = verify_run(run)
    assert len(problems) == 1 and "signed by a key this machine does not trust" in problems[0]


def test_a_key_given_with_key_must_be_the_one_that_signed(tmp_path, own_key, capsys):
    run, _, _ = _run(tmp_path)
    other = tmp_path / "other.pub.pem"
    other.write_bytes(signing.public_pem(Ed25519PrivateKey.generate().public_key()))
    assert main(["verify", str(run), "--key", str(other)]) == 1
    assert "does not trust" in capsys.readouterr().out
    assert main(["verify", str(run), "--key", str(run / PUBLIC_KEY)]) == 0


def test_a_tampered_signature_fails(tmp_path, own_key):
    run, _, _ = _run(tmp_path)
    data = json.loads((run / ENVELOPE).read_text())
    sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
    sig[0] ^= 1
    data["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (run / ENVELOPE).write_text(json.dumps(data))
    assert any("does not verify" in p for p in verify_run(run))


@pytest.mark.parametrize("kind", ["symlink", "fifo", "device", "socket", "folder", "linked-folder"])
def test_added_symlinks_fifos_and_folders_fail(tmp_path, own_key, kind, monkeypatch):
    run, _, _ = _run(tmp_path)
    where = run / "artifacts" / "40_export_manifests"
    if kind == "symlink":
        (where / "evidence.csv").symlink_to("/etc/hostname")
    elif kind == "fifo":
        os.mkfifo(where / "pipe")
    elif kind == "device":  # a character device like /dev/null (the tests run as root, as CI does)
        os.mknod(where / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    elif kind == "socket":
        monkeypatch.chdir(where)  # a socket path must be short: bind it relative
        server = socket.socket(socket.AF_UNIX)
        server.bind("sock")
        server.close()
    elif kind == "folder":
        (where / "empty").mkdir()
    else:
        (run / "more").symlink_to(tmp_path, target_is_directory=True)
    problems = verify_run(run)
    expected = {"symlink": "symlink in the run folder", "fifo": "FIFO in the run folder",
                "device": "device in the run folder: artifacts/40_export_manifests/null",
                "socket": "socket in the run folder",
                "folder": "folder added after the run: artifacts/40_export_manifests/empty",
                "linked-folder": "symlink in the run folder: more"}[kind]
    assert any(expected in p for p in problems), problems


def test_an_unsigned_run_fails(tmp_path, own_key):
    run, _, _ = _run(tmp_path)
    (run / ENVELOPE).unlink()
    assert verify_run(run)[-1].startswith("not signed")


def test_a_signing_key_readable_by_others_is_refused(tmp_path, own_key):
    signing.signing_key()
    own_key.chmod(0o644)
    with pytest.raises(Exception, match="readable by other users"):
        signing.signing_key()


def test_trusted_keys_folder_is_honoured(tmp_path, own_key, monkeypatch):
    run, _, _ = _run(tmp_path)
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "elsewhere.pem"))  # this machine's own key is another
    assert any("does not trust" in p for p in verify_run(run))
    (config / "k3smig" / "trusted-keys").mkdir(parents=True)
    pem = serialization.load_pem_private_key(own_key.read_bytes(), None).public_key()
    (config / "k3smig" / "trusted-keys" / "operator.pem").write_bytes(signing.public_pem(pem))
    assert verify_run(run) == []
