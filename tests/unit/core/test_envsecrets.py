"""Credentials from the environment (case 1) and the Secrets built from them."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from k3smig_lib.core.envsecrets import (
    CREDENTIAL_VARS,
    credentials_status,
    env_secret_values,
    external_dns_secret,
    registry_pull_secret,
    require_env,
)
from k3smig_lib.core.secrets import decoded_items, secret_values
from k3smig_lib.errors import ParameterError

SECRET_KEY = "5a1c3f9e-0d2b-4c8a-9e7f-1b2c3d4e5f60"
ACCESS_KEY = "SCWXXXXXXXXXXXXXXXXX"
PROJECT = "0f9e8d7c-6b5a-4321-8765-43210fedcba9"
ENV = {"SCW_ACCESS_KEY": ACCESS_KEY, "SCW_SECRET_KEY": SECRET_KEY, "SCW_DEFAULT_PROJECT_ID": PROJECT,
       "HOME": "/root"}


def test_missing_and_empty_variables_are_all_named_and_no_value_is_quoted() -> None:
    env = {"SCW_ACCESS_KEY": ACCESS_KEY, "SCW_SECRET_KEY": "   ", "GRAFANA_TOKEN": ""}
    expected = r"needs the environment variable\(s\) SCW_SECRET_KEY, GRAFANA_TOKEN"
    with pytest.raises(ParameterError, match=expected) as info:
        require_env(["SCW_ACCESS_KEY", "SCW_SECRET_KEY", "GRAFANA_TOKEN"], env, purpose="preflight")
    assert ACCESS_KEY not in str(info.value)
    assert "export SCW_SECRET_KEY, GRAFANA_TOKEN in .envrc" in str(info.value)


def test_required_variables_are_returned_when_all_are_set() -> None:
    assert require_env(["SCW_SECRET_KEY"], ENV, purpose="x") == {"SCW_SECRET_KEY": SECRET_KEY}


def test_require_env_reads_the_real_process_environment_by_default() -> None:
    # A child process with a clean environment: the check must fail there, naming the variable.
    code = ("from k3smig_lib.core.envsecrets import require_env\n"
            "try:\n    require_env(['SCW_SECRET_KEY'], purpose='the probe')\n"
            "except Exception as e:\n    print(type(e).__name__, e)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCW_")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ParameterError the probe needs the environment variable(s) SCW_SECRET_KEY")


def test_credentials_status_says_present_or_not_and_never_shows_a_value() -> None:
    status = credentials_status(["SCW_ACCESS_KEY", "SCW_SECRET_KEY", "GRAFANA_TOKEN"], ENV)
    assert [(s["name"], s["present"]) for s in status] == [
        ("SCW_ACCESS_KEY", True), ("SCW_SECRET_KEY", True), ("GRAFANA_TOKEN", False)]
    assert status[1]["purpose"] == CREDENTIAL_VARS["SCW_SECRET_KEY"]
    assert SECRET_KEY not in repr(status) and ACCESS_KEY not in repr(status)


def test_registry_pull_secret_logs_in_as_nologin_with_the_scaleway_secret_key() -> None:
    obj = registry_pull_secret("vaultwarden", env=ENV)
    assert obj["type"] == "kubernetes.io/dockerconfigjson"
    assert obj["metadata"] == {"name": "scw-registry", "namespace": "vaultwarden",
                               "labels": {"app.kubernetes.io/managed-by": "k3smig"}}
    entry = json.loads(decoded_items(obj)[".dockerconfigjson"])["auths"]["rg.fr-par.scw.cloud"]
    assert entry["username"] == "nologin" and entry["password"] == SECRET_KEY
    assert base64.b64decode(entry["auth"]) == f"nologin:{SECRET_KEY}".encode()


def test_registry_pull_secret_without_the_secret_key_fails_naming_it() -> None:
    with pytest.raises(ParameterError, match="the registry pull Secret needs .* SCW_SECRET_KEY"):
        registry_pull_secret("apps", env={"SCW_ACCESS_KEY": ACCESS_KEY})


def test_external_dns_secret_carries_both_keys_and_the_project_when_set() -> None:
    obj = external_dns_secret(env=ENV)
    meta = obj["metadata"]
    assert (meta["namespace"], meta["name"]) == ("external-dns", "external-dns-scaleway")
    assert decoded_items(obj) == {"SCW_ACCESS_KEY": ACCESS_KEY.encode(),
                                  "SCW_SECRET_KEY": SECRET_KEY.encode(),
                                  "SCW_DEFAULT_PROJECT_ID": PROJECT.encode()}
    without = external_dns_secret(env={"SCW_ACCESS_KEY": ACCESS_KEY, "SCW_SECRET_KEY": SECRET_KEY})
    assert set(decoded_items(without)) == {"SCW_ACCESS_KEY", "SCW_SECRET_KEY"}


def test_external_dns_secret_without_credentials_names_both_variables() -> None:
    with pytest.raises(ParameterError, match="SCW_ACCESS_KEY, SCW_SECRET_KEY, which are unset or empty"):
        external_dns_secret(env={})


def test_leak_gate_values_cover_secret_variables_but_not_identifiers() -> None:
    values = env_secret_values({**ENV, "GRAFANA_TOKEN": "glsa_abcdefghijklmnop_12345678\n"})
    assert {SECRET_KEY.encode(), ACCESS_KEY.encode(), b"glsa_abcdefghijklmnop_12345678"} <= values
    assert PROJECT.encode() not in values
    assert b"/root" not in values


def test_built_secrets_feed_the_password_to_the_leak_gate() -> None:
    values = secret_values([registry_pull_secret("apps", env=ENV)])
    assert SECRET_KEY.encode() in values
