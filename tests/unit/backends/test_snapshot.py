import json
import tarfile

import pytest

from k3smig_lib.backends.snapshot import SnapshotSource, read_export
from k3smig_lib.core.yamlio import MAX_FILE_BYTES
from k3smig_lib.errors import InvalidNameError, LimitError, SourceError

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  uid: 0b7c1f52-3d4e-4f60-8a91-2b3c4d5e6f70
  resourceVersion: "48213"
spec:
  replicas: 2
"""


def test_reads_list_multidoc_and_json_exports(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "list.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: one, namespace: shop}\n"
        "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: two, namespace: shop}\n")
    (tmp_path / "multi.yml").write_text(
        DEPLOY + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n---\n")
    (tmp_path / "svc.json").write_text(json.dumps({"apiVersion": "v1", "kind": "ServiceList", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": "shop"}}]}))
    names = sorted((o["kind"], o["metadata"]["name"]) for o in read_export(tmp_path))
    assert names == [("ConfigMap", "one"), ("ConfigMap", "two"), ("Deployment", "web"), ("Service", "db"),
                     ("Service", "web")]


def test_broken_yaml_names_the_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("kind: [unclosed\n")
    with pytest.raises(SourceError, match=r"bad.yaml: line 2, column 1: "):
        read_export(tmp_path)


def test_non_kubernetes_document_is_refused_with_a_fix(tmp_path):
    (tmp_path / "x.yaml").write_text("just: a mapping\n")
    with pytest.raises(SourceError, match="no kind or metadata"):
        read_export(tmp_path)


def test_missing_folder_is_explained(tmp_path):
    with pytest.raises(SourceError, match="does not exist.*to fix this"):
        read_export(tmp_path / "nope")


def test_volumes_are_listed_only_for_claims_with_an_archive(tmp_path):
    (tmp_path / "pvc.yaml").write_text(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: data, namespace: shop},"
        " spec: {storageClassName: scw-bssd, accessModes: [ReadWriteOnce], resources: {requests: {storage: 5Gi}}}}\n"
        "- {apiVersion: v1, kind: PersistentVolumeClaim, metadata: {name: cache, namespace: shop}, spec: {}}\n")
    vol_dir = tmp_path / "volumes" / "shop"
    vol_dir.mkdir(parents=True)
    with tarfile.open(vol_dir / "data.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("./hello.txt")
        info.size = 0
        tar.addfile(info)
    src = SnapshotSource(tmp_path)
    vols = src.list_volumes()
    assert [(v.id, v.storage_class, v.size, v.access_modes) for v in vols] == [
        ("shop/data", "scw-bssd", "5Gi", ("ReadWriteOnce",))]
    with src.open_volume(vols[0]) as fh:
        assert fh.read(2) == b"\x1f\x8b"


def test_cluster_yaml_describes_the_snapshot(tmp_path):
    (tmp_path / "cluster.yaml").write_text("name: prod-k8s\nkubernetesVersion: v1.31.4\nkubeSystemUID: abc\n")
    (tmp_path / "m.yaml").write_text(DEPLOY)
    info = SnapshotSource(tmp_path).info()
    assert (info.kind, info.cluster_name, info.kubernetes_version, info.identity) == (
        "snapshot", "prod-k8s", "v1.31.4", "abc")
    assert len(SnapshotSource(tmp_path).list_objects()) == 1


HOSTILE = {
    "object name": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ../../PWNED-objname, namespace: shop}\n",
                    "metadata.name '../../PWNED-objname'"),
    "namespace": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: ../PWNED-nsdir}\n",
                  "metadata.namespace '../PWNED-nsdir'"),
    "configmap key": ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: shop}\n"
                      "data: {../../../PWNED-key: x}\n", "data key '../../../PWNED-key'"),
    "claim name": ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: ../../PWNED-vol, namespace: shop}\n"
                   "spec: {resources: {requests: {storage: 1Gi}}}\n", "metadata.name '../../PWNED-vol'"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_names_are_refused_naming_object_file_and_document(tmp_path, case):
    text, fragment = HOSTILE[case]
    (tmp_path / "ok.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    (tmp_path / "evil.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n---\n" + text)
    with pytest.raises(InvalidNameError) as err:
        read_export(tmp_path)
    message = str(err.value)
    assert f"{tmp_path / 'evil.yaml'}, document 2 (line 5)" in message and fragment in message


def test_an_object_without_a_name_is_refused_with_file_and_document(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                                      "  metadata: {namespace: a}\n")
    with pytest.raises(InvalidNameError, match=r"cm.yaml, document 1 \(line 1\), item 1: .*metadata.name is missing"):
        read_export(tmp_path)


def test_invalid_base64_in_a_secret_is_named_without_the_value(tmp_path):
    (tmp_path / "s.yaml").write_text("apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: a}\n"
                                     "data: {password: 'hunter2 is not base64!'}\n")
    with pytest.raises(SourceError) as err:
        read_export(tmp_path)
    assert "Secret 'db' in namespace 'a'" in str(err.value) and "'password' is not valid base64" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_duplicate_keys_are_refused_with_file_and_line(tmp_path):
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: 1\n  k: 2\n")
    with pytest.raises(SourceError, match=r"cm.yaml: line 6, column 3: duplicate key 'k'"):
        read_export(tmp_path)
    (tmp_path / "cm.yaml").unlink()
    (tmp_path / "cm.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap",\n "metadata": {"name": "a"},\n'
                                      ' "kind": "Secret"}\n')
    with pytest.raises(SourceError, match=r"cm.json: line 1: duplicate key 'kind'"):
        read_export(tmp_path)


def test_the_same_object_twice_is_read_once_or_refused_when_the_copies_differ(tmp_path):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: n}\ndata: {k: '%s'}\n"
    (tmp_path / "all.yaml").write_text(cm % "1")
    (tmp_path / "cm.yaml").write_text(cm % "1")
    assert len(read_export(tmp_path)) == 1
    (tmp_path / "cm.yaml").write_text(cm % "2")
    with pytest.raises(SourceError, match=r"configmap/a in ns n is in .*all.yaml and, different, in .*cm.yaml"):
        read_export(tmp_path)


def test_an_export_path_that_is_a_file_says_so(tmp_path):
    (tmp_path / "export.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n")
    with pytest.raises(SourceError, match="is a file, not a folder"):
        read_export(tmp_path / "export.yaml")


def test_non_utf8_and_oversized_export_files_are_clear_errors(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes(b"apiVersion: v1\nkind: Namespace\nmetadata: {name: caf\xe9}\n")
    with pytest.raises(SourceError, match=r"latin1.yaml is not UTF-8: byte 0xe9 .*\(line 3\)"):
        read_export(tmp_path)
    (tmp_path / "latin1.yaml").unlink()
    with (tmp_path / "huge.yaml").open("wb") as fh:
        fh.truncate(MAX_FILE_BYTES + 1)  # sparse: refused from its size, before a byte is read
    with pytest.raises(LimitError, match=rf"huge.yaml has {MAX_FILE_BYTES + 1} bytes, more than the limit of "
                       rf"{MAX_FILE_BYTES} bytes \(64 MiB\)"):
        read_export(tmp_path)


def test_billion_laughs_export_fails_fast(tmp_path):
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: lol}", "a: &a [lol, lol, lol, lol, lol, lol]"]
    lines += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(9)]
    (tmp_path / "laughs.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(LimitError, match="laughs.yaml: the document at line 1 expands its aliases"):
        read_export(tmp_path)
