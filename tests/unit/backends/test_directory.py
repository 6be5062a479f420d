import base64
from functools import partial

import pyrage
import yaml

from k3smig_lib.backends.directory import DirectoryTarget, auto_identity
from k3smig_lib.core.sealing import seal_secret, strip_values, unseal_secret

VALUE = "Zq8-not-a-real-admin-token-4c1f9e"
SECRET = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": {"name": "vaultwarden-admin", "namespace": "vaultwarden"},
          "data": {"ADMIN_TOKEN": base64.b64encode(VALUE.encode()).decode()}}
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "vaultwarden"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "vaultwarden", "namespace": "vaultwarden"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "vw"}},
                   "template": {"metadata": {"labels": {"app": "vw"}},
                                "spec": {"containers": [{"name": "vw", "image": "vaultwarden/server:1.32.0"}]}}}}


def all_text(root):
    return "".join(p.read_text() for p in root.rglob("*.yaml"))


def test_objects_land_in_apply_order_with_a_fifo_kustomization(tmp_path):
    target = DirectoryTarget(tmp_path, seal=strip_values)
    result = target.apply([DEPLOY, SECRET, NS], dry_run=False)
    assert [i.action for i in result.items] == ["create"] * 3
    kust = yaml.safe_load((tmp_path / "manifests" / "kustomization.yaml").read_text())
    assert kust["sortOptions"] == {"order": "fifo"}
    stages = [r.split("/")[0] for r in kust["resources"]]
    assert stages == sorted(stages) and stages[0].startswith("02") and stages[-1].startswith("10")


def test_dry_run_writes_nothing(tmp_path):
    result = DirectoryTarget(tmp_path / "t", seal=strip_values).apply([NS, DEPLOY], dry_run=True)
    assert result.count("create") == 2 and not (tmp_path / "t").exists()


def test_secret_values_are_never_written_without_a_recipient(tmp_path):
    DirectoryTarget(tmp_path, seal=strip_values).apply([SECRET], dry_run=False)
    text = all_text(tmp_path)
    assert VALUE not in text and SECRET["data"]["ADMIN_TOKEN"] not in text
    assert "ADMIN_TOKEN" in text


def test_second_apply_is_unchanged_even_for_sealed_secrets(tmp_path):
    identity, recipient = auto_identity(tmp_path)
    target = DirectoryTarget(tmp_path, seal=partial(seal_secret, recipient=recipient),
                             unseal=partial(unseal_secret, identity=identity))
    target.apply([NS, SECRET, DEPLOY], dry_run=False)
    assert VALUE not in all_text(tmp_path)
    again = target.apply([NS, SECRET, DEPLOY], dry_run=False)
    assert again.changes == 0 and again.count("unchanged") == 3
    secret = next(o for o in target.list_objects() if o["kind"] == "Secret")
    assert base64.b64decode(secret["data"]["ADMIN_TOKEN"]).decode() == VALUE


def test_an_existing_object_that_differs_is_a_conflict_and_nothing_is_written(tmp_path):
    target = DirectoryTarget(tmp_path, seal=strip_values)
    target.apply([NS, DEPLOY], dry_run=False)
    changed = {**DEPLOY, "spec": {**DEPLOY["spec"], "replicas": 3}}
    before = all_text(tmp_path)
    result = target.apply([NS, changed, SECRET], dry_run=False, existing="fail")
    assert result.count("conflict") == 1 and "existing=fail" in next(i.reason for i in result.items
                                                                     if i.action == "conflict")
    assert all_text(tmp_path) == before
    updated = target.apply([NS, changed], dry_run=False, existing="update")
    assert updated.count("update") == 1
    assert next(o for o in target.list_objects() if o["kind"] == "Deployment")["spec"]["replicas"] == 3


def test_auto_identity_is_private_and_stable(tmp_path):
    first = auto_identity(tmp_path)
    assert auto_identity(tmp_path) == first
    key = tmp_path / ".k3smig" / "age-identity.txt"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert str(pyrage.x25519.Identity.from_str(first[0]).to_public()) == first[1]


def test_dry_run_auto_identity_writes_no_key(tmp_path):
    auto_identity(tmp_path, create=False)
    assert not (tmp_path / ".k3smig").exists()
