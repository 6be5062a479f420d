"""SOPS sealing, proven against the real ``sops`` CLI in both directions.

The sops binary is built from its Go module by ``tools/build-sops.sh``; these tests fail (never skip)
when it is missing, because without it the compatibility claim is unproven.
"""

from __future__ import annotations

import base64
import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import pyrage
import pytest
import yaml

from k3smig_lib.core.leakgate import scan
from k3smig_lib.core.sealing import (
    ENCRYPTED_REGEX,
    VALUES_OMITTED,
    is_age_recipient,
    seal_secret,
    strip_values,
    unseal_secret,
)
from k3smig_lib.core.secrets import LAST_APPLIED, Fingerprinter, secret_values
from k3smig_lib.errors import ParameterError, SourceError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sops() -> Path:
    path = Path(os.environ.get("K3SMIG_SOPS") or REPO / ".cache" / "tools" / "bin" / "sops")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the sops CLI is missing at {path}: run tools/build-sops.sh (needs Go),"
                    " or set K3SMIG_SOPS to a sops binary")
    return path


@pytest.fixture(scope="module")
def age() -> tuple[str, str]:
    """A real age key pair: (identity, recipient)."""
    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def run_sops(sops: Path, args: list[str], cwd: Path, identity: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd), "SOPS_AGE_KEY": identity}
    return subprocess.run([str(sops), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def grafana_secret() -> dict[str, Any]:
    """A Secret as the export phase leaves it, with the last-applied annotation a real one carries."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "grafana-admin",
            "namespace": "monitoring",
            "labels": {"app.kubernetes.io/name": "grafana", "app.kubernetes.io/part-of": "observability"},
            "annotations": {LAST_APPLIED: '{"data":{"admin-password":"' + b64("0ld-Grafana-pw") + '"}}',
                            "reloader.stakater.com/match": "true"},
        },
        "type": "Opaque",
        "immutable": False,
        "data": {"admin-user": b64("admin"), "admin-password": b64("Gr4fana!pw \"quoted\""), "empty": ""},
        "stringData": {"ldap.toml": '[[servers]]\nhost = "ldap.example.org"\nbind_password = "s3cr3t-b"\n'},
    }


def expected_plain() -> dict[str, Any]:
    plain = grafana_secret()
    del plain["metadata"]["annotations"][LAST_APPLIED]
    return plain


def test_secret_sealed_by_k3smig_decrypts_with_the_real_sops_cli(sops: Path, age: tuple[str, str],
                                                                tmp_path: Path) -> None:
    identity, recipient = age
    (tmp_path / "grafana-admin.yaml").write_text(yaml.safe_dump(seal_secret(grafana_secret(), recipient),
                                                                sort_keys=False))
    out = run_sops(sops, ["--decrypt", "grafana-admin.yaml"], tmp_path, identity)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout) == expected_plain()


def test_sealed_file_still_decrypts_when_yaml_sorts_the_keys(sops: Path, age: tuple[str, str],
                                                            tmp_path: Path) -> None:
    identity, recipient = age
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(seal_secret(grafana_secret(), recipient), sort_keys=True))
    extract = ["--decrypt", "--extract", '["stringData"]["ldap.toml"]', "s.yaml"]
    out = run_sops(sops, extract, tmp_path, identity)
    assert out.returncode == 0, out.stderr
    assert 'bind_password = "s3cr3t-b"' in out.stdout


@pytest.mark.parametrize("rule", [["--encrypted-regex", ENCRYPTED_REGEX], []],
                         ids=["data-only", "sops-default"])
def test_file_encrypted_by_sops_unseals_with_k3smig(sops: Path, age: tuple[str, str], tmp_path: Path,
                                                   rule: list[str]) -> None:
    identity, recipient = age
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(expected_plain(), sort_keys=False))
    out = run_sops(sops, ["--encrypt", "--age", recipient, *rule, "plain.yaml"], tmp_path)
    assert out.returncode == 0, out.stderr
    sealed = yaml.safe_load(out.stdout)
    assert sealed["data"]["admin-user"].startswith("ENC[AES256_GCM,")
    assert unseal_secret(sealed, identity) == expected_plain()


def test_k3smig_unseals_what_it_sealed(age: tuple[str, str]) -> None:
    identity, recipient = age
    sealed = seal_secret(grafana_secret(), recipient)
    assert unseal_secret(yaml.safe_load(yaml.safe_dump(sealed)), identity) == expected_plain()


def test_sealed_manifest_holds_no_value_in_any_encoding(age: tuple[str, str], tmp_path: Path) -> None:
    sealed = seal_secret(grafana_secret(), age[1])
    (tmp_path / "grafana-admin.yaml").write_text(yaml.safe_dump(sealed))
    report = scan(tmp_path, secret_values([grafana_secret()]), fingerprinter=Fingerprinter(b"f" * 32))
    assert report.ok and (report.values_checked, report.short_values) == (3, 1)
    assert sealed["metadata"]["name"] == "grafana-admin" and sealed["type"] == "Opaque"
    assert set(sealed["data"]) == {"admin-user", "admin-password", "empty"}
    assert sealed["sops"]["encrypted_regex"] == ENCRYPTED_REGEX
    assert sealed["sops"]["age"][0]["enc"].startswith("-----BEGIN AGE ENCRYPTED FILE-----")


def test_value_moved_to_another_key_is_refused_by_k3smig_and_sops(sops: Path, age: tuple[str, str],
                                                                 tmp_path: Path) -> None:
    identity, recipient = age
    sealed = seal_secret(grafana_secret(), recipient)
    data = sealed["data"]
    data["admin-user"], data["admin-password"] = data["admin-password"], data["admin-user"]
    with pytest.raises(SourceError, match="data.admin-password does not decrypt: it was altered or moved"):
        unseal_secret(sealed, identity)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sealed, sort_keys=False))
    assert run_sops(sops, ["--decrypt", "s.yaml"], tmp_path, identity).returncode != 0


def test_changed_clear_text_field_breaks_the_mac_for_k3smig_and_sops(sops: Path, age: tuple[str, str],
                                                                    tmp_path: Path) -> None:
    identity, recipient = age
    sealed = seal_secret(grafana_secret(), recipient)
    sealed["metadata"]["namespace"] = "kube-system"
    with pytest.raises(SourceError, match="MAC does not match its values"):
        unseal_secret(sealed, identity)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(sealed, sort_keys=False))
    out = run_sops(sops, ["--decrypt", "s.yaml"], tmp_path, identity)
    assert out.returncode != 0 and "MAC mismatch" in out.stderr


def test_identity_of_another_key_pair_is_refused_naming_the_recipient(age: tuple[str, str]) -> None:
    sealed = seal_secret(grafana_secret(), age[1])
    stranger = str(pyrage.x25519.Identity.generate())
    expected = f"opens none of the sealed manifest's recipients \\({age[1]}\\)"
    with pytest.raises(ParameterError, match=expected):
        unseal_secret(sealed, stranger)


def test_identity_given_as_an_age_key_file_with_comments_works(age: tuple[str, str]) -> None:
    identity, recipient = age
    key_file = f"# created: 2024-05-02T10:00:00Z\n# public key: {recipient}\n{identity}\n"
    assert unseal_secret(seal_secret(grafana_secret(), recipient), key_file) == expected_plain()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("generated", True), ("age1notarealkey", False), ("AGE-SECRET-KEY-1ABC", False),
     ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ user@host", False), ("", False)],
)
def test_is_age_recipient_accepts_only_x25519_public_keys(
    text: str, expected: bool, age: tuple[str, str]
) -> None:
    assert is_age_recipient(age[1] if text == "generated" else text) is expected


def test_sealing_refuses_bad_recipients_other_kinds_and_sealed_input(age: tuple[str, str]) -> None:
    with pytest.raises(ParameterError, match="not an age public key"):
        seal_secret(grafana_secret(), "ssh-rsa AAAA")
    with pytest.raises(ParameterError, match="only Secrets are sealed, not 'ConfigMap'"):
        seal_secret({"kind": "ConfigMap", "metadata": {"name": "c"}}, age[1])
    with pytest.raises(ParameterError, match="already sealed"):
        seal_secret(seal_secret(grafana_secret(), age[1]), age[1])


def test_sealing_does_not_change_the_input(age: tuple[str, str]) -> None:
    original = grafana_secret()
    before = copy.deepcopy(original)
    seal_secret(original, age[1])
    assert original == before


def test_strip_values_keeps_names_and_keys_and_says_why() -> None:
    stripped = strip_values(grafana_secret())
    assert stripped["data"] == {"admin-password": "", "admin-user": "", "empty": "", "ldap.toml": ""}
    assert "stringData" not in stripped
    notes = stripped["metadata"]["annotations"]
    assert LAST_APPLIED not in notes and notes["reloader.stakater.com/match"] == "true"
    assert "no age recipient" in notes[VALUES_OMITTED]
    assert secret_values([stripped]) == set()
