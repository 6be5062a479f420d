import json
import tarfile

import pytest

from k3smig_lib.backends.snapshot import SnapshotSource, read_export
from k3smig_lib.errors import SourceError

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
    with pytest.raises(SourceError, match=r"cannot parse .*bad.yaml"):
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
