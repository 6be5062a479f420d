import base64
import subprocess
from functools import partial

import pyrage
import pytest
import yaml

from k3smig_lib.backends.directory import DirectoryTarget
from k3smig_lib.core.agekey import auto_identity, identity_path
from k3smig_lib.core.sealing import seal_secret, strip_values, unseal_secret
from k3smig_lib.errors import TargetError, UnsafePathError

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
    identity, recipient = auto_identity("unit-stable")
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


def test_auto_identity_is_private_and_stable_and_outside_the_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first = auto_identity("prod")
    assert auto_identity("prod") == first
    key = tmp_path / "config" / "k3smig" / "age" / "prod.txt"
    assert identity_path("prod") == key
    assert oct(key.stat().st_mode & 0o777) == "0o600" and oct(key.parent.stat().st_mode & 0o777) == "0o700"
    assert str(pyrage.x25519.Identity.from_str(first[0]).to_public()) == first[1]


def test_dry_run_auto_identity_writes_no_key(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    auto_identity("prod", create=False)
    assert not (tmp_path / "config").exists()


def cm(name, namespace="shop", api_version="v1", kind="ConfigMap", **extra):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **extra}


def test_a_hostile_name_never_leaves_the_tree_even_past_source_validation(tmp_path):
    """Defence in depth: objects that skipped the source's name check still cannot write outside."""
    target = DirectoryTarget(tmp_path / "t", seal=strip_values)
    for dry_run in (True, False):
        with pytest.raises(UnsafePathError):
            target.apply([NS, cm("cfg", namespace="../PWNED-nsdir")], dry_run=dry_run)
    result = target.apply([NS, cm("../../PWNED-objname"), cm("a/b")], dry_run=False)
    for item in result.items:
        assert (tmp_path / "t" / item.path).resolve().is_relative_to(tmp_path / "t" / "manifests")
    assert [p for p in tmp_path.rglob("*PWNED*") if not p.is_relative_to(tmp_path / "t" / "manifests")] == []


def test_same_kind_namespace_and_name_in_two_api_groups_get_two_files(tmp_path, kustomize):
    rbac = cm("admin", api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding",
              roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
              subjects=[{"kind": "User", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}])
    openshift = {**rbac, "apiVersion": "authorization.openshift.io/v1", "roleRef": {"name": "admin"},
                 "subjects": [{"kind": "User", "name": "ops"}]}
    result = DirectoryTarget(tmp_path, seal=strip_values).apply([NS, rbac, openshift], dry_run=False)
    paths = [i.path for i in result.items]
    assert len(set(paths)) == 3
    kust = yaml.safe_load((tmp_path / "manifests" / "kustomization.yaml").read_text())
    assert len(kust["resources"]) == len(set(kust["resources"])) == 3
    rendered = list(yaml.safe_load_all(kustomize(tmp_path)))
    assert sorted(d["apiVersion"] for d in rendered if d["kind"] == "RoleBinding") == [
        "authorization.openshift.io/v1", "rbac.authorization.k8s.io/v1"]


def test_long_and_non_plain_names_get_short_unique_file_names(tmp_path, kustomize):
    long_a, long_b = "a" * 240 + "-one", "a" * 240 + "-two"
    objs = [NS, cm(long_a), cm(long_b),
            cm("system:image-pullers", api_version="rbac.authorization.k8s.io/v1", kind="RoleBinding",
               roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"})]
    result = DirectoryTarget(tmp_path, seal=strip_values).apply(objs, dry_run=False)
    names = [i.path.rsplit("/", 1)[1] for i in result.items]
    assert len(set(names)) == 4 and all(len(n.encode()) <= 200 for n in names)
    assert all(":" not in n for n in names)
    rendered = {d["metadata"]["name"] for d in yaml.safe_load_all(kustomize(tmp_path))}
    assert {long_a, long_b, "system:image-pullers"} <= rendered


def test_the_kustomization_lists_every_manifest_of_the_tree_across_applies(tmp_path, kustomize):
    target = DirectoryTarget(tmp_path, seal=strip_values)
    target.apply([NS, SECRET], dry_run=False)  # phase 50
    target.apply([DEPLOY], dry_run=False)  # phase 60
    kust = yaml.safe_load((tmp_path / "manifests" / "kustomization.yaml").read_text())
    assert [r.split("/")[-1] for r in kust["resources"]] == [
        "namespace-vaultwarden.yaml", "secret-vaultwarden-admin.yaml", "deployment-vaultwarden.yaml"]
    assert {d["kind"] for d in yaml.safe_load_all(kustomize(tmp_path))} == {"Namespace", "Secret", "Deployment"}


def test_an_empty_manifest_left_by_a_crash_is_named_not_a_traceback(tmp_path):
    target = DirectoryTarget(tmp_path, seal=strip_values)
    target.apply([NS, DEPLOY], dry_run=False)
    path = next((tmp_path / "manifests").rglob("deployment-*.yaml"))
    path.write_text("")
    with pytest.raises(TargetError) as err:
        target.apply([NS, DEPLOY], dry_run=True)
    assert str(path) in str(err.value) and "delete the file and re-run" in str(err.value)


def test_an_object_under_an_older_file_name_is_moved_not_duplicated(tmp_path, kustomize):
    target = DirectoryTarget(tmp_path, seal=strip_values)
    target.apply([NS, DEPLOY], dry_run=False)
    old = next((tmp_path / "manifests").rglob("deployment-*.yaml"))
    renamed = old.with_name("deployment-old-layout.yaml")
    old.rename(renamed)
    result = target.apply([NS, DEPLOY], dry_run=False)
    assert result.changes == 0 and "moved from" in result.items[1].reason
    assert old.is_file() and not renamed.exists()
    assert len(list(yaml.safe_load_all(kustomize(tmp_path)))) == 2


def test_the_tree_ignores_keys_and_git_add_stages_none(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    tree = tmp_path / "tree"
    legacy = tree / ".k3smig" / "age-identity.txt"
    legacy.parent.mkdir(parents=True)
    old_identity = str(pyrage.x25519.Identity.generate())
    legacy.write_text(old_identity + "\n")  # where older k3smig kept it
    identity, recipient = auto_identity("prod", legacy_root=tree)
    assert identity == old_identity and not legacy.exists()
    target = DirectoryTarget(tree, seal=partial(seal_secret, recipient=recipient))
    target.apply([NS, SECRET, DEPLOY], dry_run=False)
    (tree / "age-identity.txt").write_text(identity)  # an operator's copy, dropped in by mistake
    (tree / ".k3smig" / "run.lock").write_text("{}")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "add", "-A"], check=True)
    staged = subprocess.run(["git", "-C", str(tree), "diff", "--cached", "--name-only"], capture_output=True,
                            text=True, check=True).stdout.split()
    assert ".gitignore" in staged and any(s.startswith("manifests/") for s in staged)
    assert not any("age" in s or s.startswith(".k3smig") for s in staged), staged
    for rel in staged:
        assert "AGE-SECRET-KEY" not in (tree / rel).read_text()
    assert identity_path("prod").read_text().strip() == identity
