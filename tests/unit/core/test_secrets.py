"""Secrets: the skip set, keyed fingerprints, ledgers, redaction and the values the leak gate needs."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from typing import Any

import pytest
import yaml

from k3smig_lib.core.secrets import (
    LAST_APPLIED,
    RUN_KEY_ENV,
    Fingerprinter,
    compare_ledgers,
    decoded_items,
    generate_run_key,
    ledger_rows,
    redact,
    secret_values,
    skip_reason,
)
from k3smig_lib.errors import LedgerError, ParameterError, SourceError

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIBADAKBggqhkjOPQQDAjAj\n-----END CERTIFICATE-----\n"
TLS_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIkeykeykeykeykeykeykeykey\n-----END EC PRIVATE KEY-----\n"
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6dmF1bHR3YXJkZW4ifQ.sig"

# A realistic export of one namespace: what `kubectl get secrets -o yaml` gives, server fields included.
EXPORT = """
- apiVersion: v1
  kind: Secret
  metadata:
    name: vaultwarden-admin
    namespace: vaultwarden
    uid: 0b7e2a30-1111-4aaa-8bbb-cccccccccccc
    resourceVersion: "48121"
    creationTimestamp: "2024-05-02T10:00:00Z"
    annotations:
      kubectl.kubernetes.io/last-applied-configuration: |
        {{"apiVersion":"v1","data":{{"ADMIN_TOKEN":"b2xkLWFkbWluLXRva2VuLTIwMjM="}},"kind":"Secret",\
        "metadata":{{"name":"vaultwarden-admin","namespace":"vaultwarden"}},"type":"Opaque"}}
  type: Opaque
  data:
    ADMIN_TOKEN: bmV3LWFkbWluLXRva2VuLTIwMjQ=
    SMTP_PASSWORD: Y2hhbmdlbWU=
- apiVersion: v1
  kind: Secret
  metadata:
    name: default-token-q8v2x
    namespace: vaultwarden
    annotations:
      kubernetes.io/service-account.name: default
      kubernetes.io/service-account.uid: 5c1e0c7e-2222-4aaa-8bbb-dddddddddddd
  type: kubernetes.io/service-account-token
  data:
    ca.crt: {ca}
    namespace: dmF1bHR3YXJkZW4=
    token: {jwt}
- apiVersion: v1
  kind: Secret
  metadata:
    name: vaultwarden-tls
    namespace: vaultwarden
    annotations:
      cert-manager.io/certificate-name: vaultwarden
      cert-manager.io/issuer-name: letsencrypt-prod
      cert-manager.io/issuer-kind: ClusterIssuer
    ownerReferences:
    - apiVersion: cert-manager.io/v1
      kind: Certificate
      name: vaultwarden
      uid: 7d0c4c1a-3333-4aaa-8bbb-eeeeeeeeeeee
      controller: true
  type: kubernetes.io/tls
  data:
    tls.crt: {ca}
    tls.key: {key}
"""


def export() -> list[dict[str, Any]]:
    text = EXPORT.format(ca=b64(CA_PEM), jwt=b64(JWT), key=b64(TLS_KEY))
    objs: list[dict[str, Any]] = yaml.safe_load(text)
    return objs


def secret(name: str, namespace: str = "apps", type_: str = "Opaque", **fields: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, **fields.pop("meta", {})}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": type_, **fields}


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def helm_release(inner_password: str) -> dict[str, Any]:
    manifest = yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana"},
                               "data": {"admin-password": b64(inner_password)}})
    record = {"name": "grafana", "version": 3, "manifest": manifest, "config": {"adminUser": "admin"}}
    blob = base64.b64encode(gzip.compress(json.dumps(record).encode()))
    return secret("sh.helm.release.v1.grafana.v3", "monitoring", "helm.sh/release.v1",
                  meta={"labels": {"owner": "helm", "name": "grafana"}}, data={"release": b64(blob)})


# --- skip set (case 27) ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("obj", "rule"),
    [
        (secret("ci-token", type_="kubernetes.io/service-account-token",
                meta={"annotations": {"kubernetes.io/service-account.name": "ci"}}), "W5:"),
        (export()[1], "W6:"),
        (secret("builder-dockercfg-x9", type_="kubernetes.io/dockercfg",
                meta={"annotations": {"kubernetes.io/service-account.name": "builder",
                                      "openshift.io/token-secret.name": "builder-token-x9"}}), "W5:"),
        (secret("bootstrap-token-abcdef", "kube-system", "bootstrap.kubernetes.io/token"), "W8:"),
        (helm_release("pw-inside-helm"), "KEEP5 not requested"),
        (secret("sealed-db", meta={"ownerReferences": [
            {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "name": "sealed-db"}]}), "W1:"),
        ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}}, "W6:"),
    ],
    ids=["sa-token", "default-sa-token", "openshift-dockercfg", "bootstrap-token", "helm-release",
         "owned-by-sealedsecret", "kube-root-ca"],
)
def test_skip_set_names_the_rule_for_every_generated_secret(obj: dict[str, Any], rule: str) -> None:
    assert skip_reason(obj).startswith(rule)


def test_cert_manager_tls_secret_with_owner_reference_is_migrated_keep4() -> None:
    tls = export()[2]
    assert tls["metadata"]["ownerReferences"][0]["kind"] == "Certificate"
    assert skip_reason(tls) == ""


def test_plain_and_hand_made_registry_secrets_are_migrated() -> None:
    assert skip_reason(export()[0]) == ""
    legacy = secret("legacy-pull", type_="kubernetes.io/dockercfg", data={".dockercfg": b64("{}")})
    assert skip_reason(legacy) == ""


def test_helm_release_secrets_migrate_only_when_keep5_is_requested() -> None:
    assert skip_reason(helm_release("x"), keep_helm_releases=True) == ""


# --- fingerprints (case 30, §4.6) --------------------------------------------------------------------

def test_fingerprint_is_deterministic_for_one_key_and_changes_with_the_key() -> None:
    key = bytes.fromhex(generate_run_key())
    one, same = Fingerprinter(key), Fingerprinter(key)
    other = Fingerprinter(bytes.fromhex(generate_run_key()))
    made = [f.fingerprint("apps", "db", "password", b"admin") for f in (one, same, other)]
    assert made[0] == made[1]
    assert made[0] != made[2]
    assert len(made[0]) == 16


@pytest.mark.parametrize("weak", [b"admin", b"changeme", b"password", b"123456"])
def test_low_entropy_value_fingerprint_is_not_a_plain_sha256(weak: bytes) -> None:
    fp = Fingerprinter(b"k" * 32).fingerprint("apps", "db", "password", weak)
    dictionary = {hashlib.sha256(weak).hexdigest(), hashlib.sha256(b"apps|db|password|" + weak).hexdigest()}
    assert all(fp != d[:16] for d in dictionary)


def test_same_value_in_two_secrets_gets_two_fingerprints() -> None:
    fp = Fingerprinter(b"k" * 32)
    assert fp.fingerprint("a", "db", "pw", b"changeme") != fp.fingerprint("b", "db", "pw", b"changeme")
    assert fp.fingerprint("a", "db", "pw", b"changeme") != fp.fingerprint("a", "db", "pw2", b"changeme")


def test_run_key_from_environment_makes_fingerprints_comparable_across_processes() -> None:
    env = {RUN_KEY_ENV: generate_run_key()}
    first, second = Fingerprinter.from_env(env), Fingerprinter.from_env(env)
    assert not first.ephemeral
    assert first.fingerprint("a", "b", "c", b"v") == second.fingerprint("a", "b", "c", b"v")
    assert first.key_id == second.key_id


def test_without_run_key_the_key_is_random_and_marked_ephemeral() -> None:
    first, second = Fingerprinter.from_env({}), Fingerprinter.from_env({})
    assert first.ephemeral and second.ephemeral
    assert first.fingerprint("a", "b", "c", b"v") != second.fingerprint("a", "b", "c", b"v")


def test_bad_run_key_is_refused_without_quoting_it() -> None:
    with pytest.raises(ParameterError, match=f"{RUN_KEY_ENV} is not a hex string") as info:
        Fingerprinter.from_env({RUN_KEY_ENV: "not-hex-hunter2"})
    assert "hunter2" not in str(info.value)
    with pytest.raises(ParameterError, match="at least 16 are needed"):
        Fingerprinter.from_env({RUN_KEY_ENV: "abcd"})


def test_fingerprinter_repr_does_not_show_the_key() -> None:
    key = bytes.fromhex(generate_run_key())
    assert key.hex() not in repr(Fingerprinter(key))


# --- decoding and ledgers ----------------------------------------------------------------------------

def test_decoded_items_merge_data_and_string_data_like_the_api_server() -> None:
    obj = secret("db", data={"user": b64("app"), "password": b64("old")}, stringData={"password": "new"})
    assert decoded_items(obj) == {"user": b"app", "password": b"new"}


def test_bad_base64_names_the_secret_and_key_but_not_the_value() -> None:
    obj = secret("db", data={"password": "s3cr3t!!not-base64"})
    expected = r"secret/db in ns apps: data key 'password' is not valid base64"
    with pytest.raises(SourceError, match=expected) as info:
        decoded_items(obj)
    assert "s3cr3t" not in str(info.value)


def test_ledger_has_one_row_per_key_with_length_and_no_value() -> None:
    fp = Fingerprinter(b"k" * 32)
    rows = ledger_rows(export(), fp, side="source")
    admin = [r for r in rows if r["name"] == "vaultwarden-admin"]
    assert [(r["key"], r["length"], r["action"]) for r in admin] == [
        ("ADMIN_TOKEN", 20, "migrate"), ("SMTP_PASSWORD", 8, "migrate")]
    token_rows = [r for r in rows if r["name"] == "default-token-q8v2x"]
    assert {r["action"] for r in token_rows} == {"skip"} and token_rows[0]["reason"].startswith("W6:")
    assert "changeme" not in repr(rows) and b64("changeme") not in repr(rows)
    expected = fp.fingerprint("vaultwarden", "vaultwarden-admin", "SMTP_PASSWORD", b"changeme")
    assert admin[1]["fingerprint"] == expected


def test_empty_secret_still_has_a_ledger_row() -> None:
    rows = ledger_rows([secret("placeholder")], Fingerprinter(b"k" * 32), side="source")
    assert [(r["key"], r["length"], r["fingerprint"]) for r in rows] == [("", 0, "")]


def test_compare_ledgers_reports_equal_missing_differs_and_extra_per_key() -> None:
    fp = Fingerprinter(b"k" * 32)
    source = [secret("db", data={"user": b64("app"), "password": b64("changeme")}),
              secret("api", data={"token": b64("abc123abc123")}),
              secret("tls", type_="kubernetes.io/tls", data={"tls.key": b64("k")}),
              secret("t", type_="kubernetes.io/service-account-token", data={"token": b64("jwt")})]
    target = [secret("db", data={"user": b64("app"), "password": b64("changed!"), "extra": b64("x")}),
              secret("tls", type_="Opaque", data={"tls.key": b64("k")})]
    rows = compare_ledgers(ledger_rows(source, fp, side="source"), ledger_rows(target, fp, side="target"))
    status = {(r["name"], r["key"]): r["status"] for r in rows}
    assert status == {("db", "user"): "equal", ("db", "password"): "differs",
                      ("db", "extra"): "extra on target", ("api", "token"): "missing on target",
                      ("tls", "tls.key"): "differs"}
    tls = next(r for r in rows if r["name"] == "tls")
    assert tls["detail"] == "type kubernetes.io/tls on source, Opaque on target"


def test_ledgers_made_with_different_run_keys_are_not_compared() -> None:
    obj = [secret("db", data={"password": b64("changeme")})]
    with pytest.raises(LedgerError, match="different run keys"):
        compare_ledgers(ledger_rows(obj, Fingerprinter(b"a" * 32), side="source"),
                        ledger_rows(obj, Fingerprinter(b"b" * 32), side="target"))


# --- redaction ---------------------------------------------------------------------------------------

def test_redact_hides_values_and_the_last_applied_annotation_and_keeps_the_original() -> None:
    original = export()[0] | {"stringData": {"extra": "plain-text-pw"}}
    shown = redact(original)
    assert shown["data"] == {"ADMIN_TOKEN": "<redacted 20 bytes>", "SMTP_PASSWORD": "<redacted 8 bytes>"}
    assert shown["stringData"] == {"extra": "<redacted 13 bytes>"}
    assert shown["metadata"]["annotations"][LAST_APPLIED].startswith("<redacted ")
    assert "b2xkLWFkbWluLXRva2VuLTIwMjM=" not in json.dumps(shown)
    assert original["data"]["SMTP_PASSWORD"] == "Y2hhbmdlbWU="


def test_redact_handles_lists_and_leaves_other_kinds_alone() -> None:
    config: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                              "data": {"k": "v"}}
    listed = redact({"apiVersion": "v1", "kind": "List", "items": [export()[0], config]})
    assert listed["items"][0]["data"]["SMTP_PASSWORD"] == "<redacted 8 bytes>"
    assert listed["items"][1] == config
    copy = redact(config)
    copy["data"]["k"] = "changed"
    assert config["data"]["k"] == "v"


def test_redact_shows_helm_release_records_as_lengths_only() -> None:
    shown = redact(helm_release("pw-inside-helm"))
    assert shown["data"]["release"].startswith("<redacted ")
    assert shown["metadata"]["labels"]["owner"] == "helm"


# --- values for the leak gate ------------------------------------------------------------------------

def test_secret_values_include_old_values_from_the_last_applied_annotation() -> None:
    values = secret_values(export())
    assert {b"new-admin-token-2024", b"changeme", b"old-admin-token-2023"} <= values


def test_secret_values_leave_out_public_certificates_and_token_namespace() -> None:
    values = secret_values(export())
    assert b"vaultwarden" not in values
    assert not any(v.startswith(b"-----BEGIN CERTIFICATE-----") for v in values)
    assert any(b"PRIVATE KEY" in v for v in values)


def test_secret_values_reach_into_docker_configs_and_helm_releases() -> None:
    auth = b64("robot$ci:registry-pass-123")
    config = {"auths": {"ghcr.io": {"password": "registry-pass-123", "auth": auth}}}
    docker = secret("regcred", type_="kubernetes.io/dockerconfigjson",
                    data={".dockerconfigjson": b64(json.dumps(config))})
    values = secret_values([docker, helm_release("grafana-admin-pw-9")])
    assert {b"registry-pass-123", auth.encode(), b"grafana-admin-pw-9"} <= values


def test_secret_values_ignore_objects_that_are_not_secrets() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "not-secret"}}
    assert secret_values([config]) == set()
