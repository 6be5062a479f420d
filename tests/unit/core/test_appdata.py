"""Application proofs from a manifest plus a few fetched files: Vaultwarden, Prometheus, Grafana."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from k3smig_lib.core.appdata import (
    block_meta_paths,
    database_paths,
    grafana_secret_key,
    prometheus_blocks,
    vaultwarden_files,
)
from k3smig_lib.core.manifest import manifest_from_dir


def vault(root: Path, *, sends: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    db = root / "db.sqlite3"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE attachments (id TEXT, cipher_uuid TEXT, file_name TEXT, file_size INTEGER, akey TEXT)")
    con.execute("INSERT INTO attachments VALUES ('a1', 'c1', 'n', 5, ''), ('a2', 'c1', 'n', 3, ''),"
                " ('a3', 'c2', 'n', 1, '')")
    if sends:
        con.execute("CREATE TABLE sends (uuid TEXT, atype INTEGER, data TEXT)")
        con.execute("INSERT INTO sends VALUES ('s1', 1, ?), ('s2', 0, '{}'), ('s3', 1, ?)",
                    (json.dumps({"id": "f1", "size": 4}), json.dumps({"id": "f9"})))
    con.commit()
    con.close()
    (root / "attachments" / "c1").mkdir(parents=True)
    (root / "attachments" / "c1" / "a1").write_bytes(b"12345")
    (root / "attachments" / "c1" / "a2").write_bytes(b"too long")  # recorded size 3
    (root / "attachments" / "c1" / "orphan").write_bytes(b"?")
    (root / "sends" / "s1").mkdir(parents=True)
    (root / "sends" / "s1" / "f1").write_bytes(b"data")
    (root / "rsa_key.pem").write_text("k")
    return db


def test_vaultwarden_attachments_are_checked_with_their_sizes_and_sends_with_their_files(tmp_path):
    db = vault(tmp_path / "vw")
    report = vaultwarden_files(db, manifest_from_dir(tmp_path / "vw"))
    assert report.keys == ["rsa_key.pem"] and report.attachments == 3
    assert report.missing == ["attachments/c1/a2 (size 8 != 3 recorded)", "attachments/c2/a3 (no file)"]
    assert report.orphans == ["c1/orphan"]
    assert report.sends == 2 and report.sends_missing == ["sends/s3/f9"]
    assert not report.ok and "2 missing or wrong size" in report.describe()


def test_a_vaultwarden_without_sends_says_so_and_passes_when_files_match(tmp_path):
    db = vault(tmp_path / "vw", sends=False)
    (tmp_path / "vw" / "attachments" / "c1" / "a2").write_bytes(b"abc")
    (tmp_path / "vw" / "attachments" / "c2").mkdir()
    (tmp_path / "vw" / "attachments" / "c2" / "a3").write_bytes(b"z")
    report = vaultwarden_files(db, manifest_from_dir(tmp_path / "vw"))
    assert report.ok and report.sends is None and "no sends table" in report.describe()


def test_missing_rsa_keys_fail_the_check(tmp_path):
    db = vault(tmp_path / "vw", sends=False)
    (tmp_path / "vw" / "rsa_key.pem").unlink()
    assert not vaultwarden_files(db, manifest_from_dir(tmp_path / "vw")).ok


def test_prometheus_blocks_are_read_from_their_meta_json(tmp_path):
    block = tmp_path / "01JJ0XXX301KWK2F6A3DCY3DJX"
    block.mkdir()
    (block / "meta.json").write_text(json.dumps({"ulid": block.name, "minTime": 1, "maxTime": 2,
                                                 "stats": {"numSeries": 7, "numSamples": 70}}))
    (tmp_path / "wal").mkdir()
    m = manifest_from_dir(tmp_path)
    paths = block_meta_paths(m)
    assert paths == [f"{block.name}/meta.json"]
    (b,) = prometheus_blocks(tmp_path, paths)
    assert (b.ulid, b.min_time, b.max_time, b.series, b.samples) == (block.name, 1, 2, 7, 70)


def test_databases_are_found_by_name_with_their_wal(tmp_path):
    (tmp_path / "grafana.db").write_bytes(b"S" * 1024)
    (tmp_path / "grafana.db-wal").write_bytes(b"W" * 10)
    (tmp_path / "tiny.db").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("n")
    assert database_paths(manifest_from_dir(tmp_path)) == ["grafana.db", "grafana.db-wal"]


def grafana(env: list[dict[str, object]] | None = None, volumes: list[dict[str, object]] | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "grafana", "namespace": "mon"},
            "spec": {"template": {"spec": {
                "containers": [{"name": "grafana", "image": "grafana/grafana:11", "env": env or []}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "grafana-data"}},
                            *(volumes or [])]}}}}


def test_a_grafana_secret_key_from_a_secret_must_be_on_the_target():
    wl = grafana(env=[{"name": "GF_SECURITY_SECRET_KEY",
                       "valueFrom": {"secretKeyRef": {"name": "grafana-key", "key": "k"}}}])
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "grafana-key", "namespace": "mon"}}
    (missing,) = grafana_secret_key([wl], [], "mon", "grafana-data")
    assert missing.travelled is False and "NOT on the target" in missing.describe()
    (found,) = grafana_secret_key([wl], [secret], "mon", "grafana-data")
    assert found.travelled is True


def test_a_grafana_ini_with_a_secret_key_in_a_configmap_is_found_and_no_key_means_the_default():
    ini = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ini", "namespace": "mon"},
           "data": {"grafana.ini": "[security]\nsecret_key = abc\n"}}
    wl = grafana(volumes=[{"name": "cfg", "configMap": {"name": "ini"}}])
    (check,) = grafana_secret_key([wl, ini], [ini], "mon", "grafana-data")
    assert check.travelled is True and "ConfigMap ini" in check.source
    (default,) = grafana_secret_key([grafana()], [], "mon", "grafana-data")
    assert default.travelled is None and "built-in default" in default.describe()
