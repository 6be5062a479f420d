"""Phase 70 as a notebook calls it, on snapshot exports and a folder target (no kernel needed)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from k3smig_lib.core.config import Settings
from k3smig_lib.core.htmltable import table_html
from k3smig_lib.core.manifest import Entry, Manifest
from k3smig_lib.core.ownership import plan_ownership
from k3smig_lib.phases import data
from k3smig_lib.phases.data import required_claims, target_user

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "prod-cluster"


def settings(tmp_path: Path, snapshot: Path, **extra: object) -> Settings:
    extra = {"apply": True, **extra}
    return Settings(environment="unit", run_dir=str(tmp_path / "run"), source_snapshot=str(snapshot),
                    target_dir=str(tmp_path / "target"), **extra)  # type: ignore[arg-type]


def shrink_claim(snapshot: Path, namespace: str, claim: str, size: str) -> None:
    for path in (snapshot / "manifests" / namespace).glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        items = doc.get("items") if isinstance(doc, dict) and "items" in doc else None
        for obj in items or [doc]:
            if isinstance(obj, dict) and obj.get("kind") == "PersistentVolumeClaim" and \
                    obj["metadata"]["name"] == claim:
                obj["spec"]["resources"]["requests"]["storage"] = size
        path.write_text(yaml.safe_dump(doc))


def test_a_target_claim_too_small_is_refused_before_anything_is_written(tmp_path):
    snapshot = tmp_path / "export"
    shutil.copytree(EXAMPLE, snapshot)
    shrink_claim(snapshot, "vaultwarden", "vaultwarden-data", "1Ki")
    phase = data.start(settings(tmp_path, snapshot))
    phase.volume_table()
    phase.source_manifests_table()
    phase.ownership()
    table = phase.capacity()
    row = table[table["volume"] == "vaultwarden/vaultwarden-data"].iloc[0]
    assert not row["fits"]
    assert any("target claim requests 1024" in e and "refused before any write" in e for e in phase.errors)
    assert phase.transfer().iloc[0]["result"].startswith("NOT RUN: ")
    assert not (tmp_path / "target" / "volumes").exists()
    held = phase.release()  # nothing proven: every held workload stays at 0, worded from the one vocabulary
    assert len(held) == 5 and all(r.startswith("NOT RUN: held at 0 replicas: volumes not proven: ")
                                  for r in held["released"])
    html = table_html(table)  # byte counts for people, the exact count kept in the tooltip and the CSV
    assert '<td class="n" title="1024 bytes">1.0 KiB</td>' in html and '<td class="s-FAIL">FAIL</td>' in html
    assert "1024" in (tmp_path / "run" / "artifacts" / "70_migrate_data" / "capacity.csv").read_text()
    phase.close()


def test_phase_70_tables_say_not_run_in_a_dry_run_and_link_each_volume_to_its_checksums(tmp_path):
    phase = data.start(settings(tmp_path, EXAMPLE, apply=False))
    phase.volume_table()
    manifests = phase.source_manifests_table()
    assert list(manifests["per-file checksums"])[0] == "monitoring__grafana-data.source.json"
    assert 'href="artifacts/70_migrate_data/manifests/monitoring__grafana-data.source.json"' in table_html(manifests)
    for table in (phase.transfer(), phase.verify(), phase.app_checks()):
        assert all(str(r).startswith("NOT RUN: dry run") for r in table["result"]), table
    assert all(str(r).startswith("NOT RUN: dry run") for r in phase.release()["released"])
    phase.close()


def test_phase_70_transfer_and_proof_link_every_volume_to_the_checksums_of_both_sides(tmp_path):
    phase = data.start(settings(tmp_path, EXAMPLE))
    for step in (phase.volume_table, phase.source_manifests_table, phase.ownership, phase.capacity):
        step()
    transfer, proof = phase.transfer(), phase.verify()
    run = tmp_path / "run"
    links = re.findall(r'href="([^"]+)"', table_html(transfer) + table_html(proof))
    manifests = {link for link in links if "/manifests/" in link}
    assert len(manifests) == 2 * len(phase.volumes) and all((run / link).is_file() for link in manifests)
    assert set(phase.release()["released"]) == {"PASS"}
    phase.close()


def test_loki_can_be_left_out_and_its_workload_is_still_released(tmp_path):
    phase = data.start(settings(tmp_path, EXAMPLE, include_loki=False))
    assert "monitoring/storage-loki-0" in phase.skipped
    assert all(v.claim != "storage-loki-0" for v in phase.volumes)
    phase.close()


def test_every_replica_claim_of_a_statefulset_must_be_proven_before_release():
    sts = {"kind": "StatefulSet", "metadata": {"name": "loki", "namespace": "mon",
                                               "annotations": {"k3smig.io/intended-replicas": "3"}},
           "spec": {"volumeClaimTemplates": [{"metadata": {"name": "storage"}}], "template": {"spec": {}}}}
    assert required_claims(sts) == ["storage-loki-0", "storage-loki-1", "storage-loki-2"]


def test_the_target_writer_is_the_single_owner_when_no_chown_is_needed_and_root_otherwise():
    def m(*owners: tuple[int, int]) -> Manifest:
        return Manifest({str(i) if i else ".": Entry(str(i) if i else ".", "d", 0, 0o755, u, g, "", "", 0)
                         for i, (u, g) in enumerate(owners)}, "s")
    single = m((472, 472), (472, 472))
    assert target_user(plan_ownership("g", single, None), single)[0] == (472, 472)
    mixed = m((0, 0), (5050, 5050))
    user, why = target_user(plan_ownership("p", mixed, None), mixed)
    assert user is None and "different owners" in why
