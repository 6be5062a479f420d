"""Kubernetes' naming rules, per kind, as the API server applies them."""

import pytest

from k3smig_lib.core.names import check_object, check_secret_data, config_map_key_problem, object_problems
from k3smig_lib.errors import InvalidNameError, SourceError


def obj(kind, name, namespace="shop", api_version="v1", **extra):
    meta = {"name": name} if name is not None else {}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


@pytest.mark.parametrize("item", [
    obj("ConfigMap", "app.config-1"),
    obj("Namespace", "shop", namespace=""),
    obj("Service", "web"),
    obj("RoleBinding", "system:image-pullers", api_version="rbac.authorization.k8s.io/v1"),
    obj("RoleBinding", "system:deployers", api_version="authorization.openshift.io/v1"),
    obj("ClusterRole", "system:controller:Foo", namespace="", api_version="rbac.authorization.k8s.io/v1"),
    obj("Route", "web", api_version="route.openshift.io/v1"),
    obj("ConfigMap", "cfg", data={"app.ini": "x", "_x-1.y": "y"}),
    obj("Secret", "s", stringData={"password": "x"}),
])
def test_names_the_api_server_accepts_pass(item):
    assert object_problems(item) == []
    check_object(item, "f.yaml")


@pytest.mark.parametrize(("item", "fragment"), [
    (obj("ConfigMap", "../PWNED-objname"), "metadata.name '../PWNED-objname' is not a DNS-1123 subdomain"),
    (obj("ConfigMap", "cfg", namespace="../PWNED-nsdir"), "metadata.namespace '../PWNED-nsdir'"),
    (obj("ConfigMap", "cfg", data={"../../PWNED-key": "x"}), "data key '../../PWNED-key'"),
    (obj("ConfigMap", "cfg", data={"..data": "x"}), "must not be '.' or '..' or start with '..'"),
    (obj("Secret", "s", stringData={"a/b": "x"}), "stringData key 'a/b'"),
    (obj("PersistentVolumeClaim", "../../vol"), "is not a DNS-1123 subdomain"),
    (obj("Namespace", "a.b", namespace=""), "is not a DNS-1123 label"),
    (obj("Service", "x" * 64), "is not a DNS-1123 label"),
    (obj("ConfigMap", "x" * 254), "is not a DNS-1123 subdomain"),
    (obj("RoleBinding", "../x", api_version="rbac.authorization.k8s.io/v1"), "is not a path segment name"),
    (obj("ConfigMap", None), "metadata.name is missing"),
    (obj("../Kind", "x"), "is not a Kubernetes kind"),
    (obj("ConfigMap", "x", api_version="../v1"), "apiVersion '../v1'"),
])
def test_names_the_api_server_refuses_are_named(item, fragment):
    assert any(fragment in p for p in object_problems(item)), object_problems(item)
    with pytest.raises(InvalidNameError) as err:
        check_object(item, "export/app.yaml, document 3 (line 41)")
    assert str(err.value).startswith("export/app.yaml, document 3 (line 41): ")
    assert "to fix this" in str(err.value)


def test_generate_name_alone_is_refused_and_said():
    item = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "cfg-"}}
    assert "only has generateName 'cfg-'" in object_problems(item)[0]


def test_config_map_key_rule():
    assert config_map_key_problem("tls.crt") == ""
    assert config_map_key_problem("a b")
    assert config_map_key_problem("k" * 254)


def test_invalid_base64_in_secret_data_names_the_secret_and_key_but_never_the_value():
    secret = obj("Secret", "db", data={"ok": "aGVsbG8=", "password": "not base64 hunter2!"})
    with pytest.raises(SourceError) as err:
        check_secret_data(secret, "export/secrets.yaml, document 1")
    text = str(err.value)
    assert "Secret 'db' in namespace 'shop'" in text and "'password'" in text
    assert "hunter2" not in text
    check_secret_data(obj("Secret", "db", data={"multi": "aGVs\nbG8="}), "f")  # kubectl may wrap lines
