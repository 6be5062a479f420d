"""The leak gate (cases 28-29): every form of every secret value is found; hits never carry values."""

from __future__ import annotations

import base64
import io
import json
import random
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml
from nbconvert import HTMLExporter

from k3smig_lib.core import leakgate
from k3smig_lib.core.envsecrets import env_secret_values, registry_pull_secret
from k3smig_lib.core.leakgate import LeakReport, needles, quarantine, scan
from k3smig_lib.core.secrets import Fingerprinter, redact, secret_values
from k3smig_lib.errors import SecretLeakError

# Quote, backslash, ampersand and space: JSON, HTML and URL encodings all differ from the raw bytes.
VALUE = b'Tr0ub4dor&3 "horse"\\battery'
KEY = Fingerprinter(b"r" * 32)


NB: Any = nbformat  # nbformat and nbconvert ship no type hints
HTML: Any = HTMLExporter


def failing_notebook(text: str) -> Any:
    """A notebook as papermill leaves it after an ApiException echoed the Secret it refused."""
    nb = NB.v4.new_notebook()
    cell = NB.v4.new_code_cell("target.apply(secret)")
    body = json.dumps({"kind": "Status", "message": f"Secret is invalid: {text}", "code": 422})
    cell.outputs = [NB.v4.new_output(
        "error", ename="ApiException", evalue="(422)",
        traceback=["ApiException: (422)", "Reason: Unprocessable Entity", f"HTTP response body: {body}"])]
    nb.cells.append(cell)
    return nb


def forms_in(report: LeakReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for hit in report.hits:
        found.setdefault(hit.file, set()).add(hit.form)
    return found


def no_trace_of(value: bytes, text: str) -> bool:
    return not any(n.decode(errors="replace") in text for n in needles(value).values())


def test_value_planted_in_every_form_is_found_in_every_file(tmp_path: Path) -> None:
    text = VALUE.decode()
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "k3smig.log").write_bytes(b"DEBUG create secret apps/db password=" + VALUE + b"\n")
    exported = {"data": {"password": base64.b64encode(VALUE).decode()}}
    (tmp_path / "artifacts.yaml").write_text(yaml.safe_dump(exported))
    (tmp_path / "probe.log").write_text(f"GET /api/login?password={urllib.parse.quote(text, safe='')} 401\n")
    nb = failing_notebook(text)
    NB.write(nb, tmp_path / "50_migrate_secrets.ipynb")
    (tmp_path / "50_migrate_secrets.html").write_text(HTML().from_notebook_node(nb)[0])

    report = scan(tmp_path, [VALUE], fingerprinter=KEY)

    found = forms_in(report)
    assert "raw" in found["logs/k3smig.log"]
    assert "base64" in found["artifacts.yaml"]
    assert "url" in found["probe.log"]
    assert "json (escaped twice)" in found["50_migrate_secrets.ipynb"]
    assert "json in html (quotes kept)" in found["50_migrate_secrets.html"]
    assert not report.ok and report.files_scanned == 5 and report.values_checked == 1


def test_hits_and_the_report_never_contain_the_value(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(VALUE + b" " + base64.b64encode(VALUE))
    report = scan(tmp_path, {VALUE: "secret apps/db key password"}, fingerprinter=KEY)
    assert {h.source for h in report.hits} == {"secret apps/db key password"}
    assert all(h.fingerprint == KEY.fingerprint("", "", "", VALUE) for h in report.hits)
    dumped = json.dumps(report.as_dict()) + repr(report) + report.summary()
    assert no_trace_of(VALUE, dumped)
    expected = r"2 secret value occurrence\(s\) in run files: a.log \(base64\); a.log \(raw\)"
    with pytest.raises(SecretLeakError, match=expected) as info:
        report.raise_for_hits()
    assert no_trace_of(VALUE, str(info.value))


def test_clean_run_folder_passes(tmp_path: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "apps"},
              "data": {"password": base64.b64encode(VALUE).decode()}}
    (tmp_path / "40_export.yaml").write_text(yaml.safe_dump(redact(secret)))
    fingerprint = KEY.fingerprint("apps", "db", "password", VALUE)
    (tmp_path / "ledger.csv").write_text(f"apps,db,password,{len(VALUE)},{fingerprint}\n")
    NB.write(failing_notebook("data[password]: <redacted 27 bytes>"), tmp_path / "50.ipynb")
    report = scan(tmp_path, secret_values([secret]), fingerprinter=KEY)
    assert report.ok and report.files_scanned == 3 and report.values_checked == 1
    assert report.summary().startswith("searched 3 files (")


def test_short_values_are_counted_and_not_searched(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"admin password is pw42 and the long one is " + VALUE)
    report = scan(tmp_path, [b"pw42", b"admin", VALUE], fingerprinter=KEY)
    assert (report.values_checked, report.short_values) == (1, 2)
    assert {h.form for h in report.hits} == {"raw"}
    assert "2 values shorter than 8 bytes were not searched" in report.summary()


def test_value_base64_encoded_inside_a_docker_config_is_found_at_any_alignment(tmp_path: Path) -> None:
    key = b"5a1c3f9e-0d2b-4c8a-9e7f-1b2c3d4e5f60"
    for user in (b"nologin", b"deploy", b"ci"):  # three prefix lengths: three base64 alignments
        auth = base64.b64encode(user + b":" + key).decode()
        config = {"auths": {"rg.fr-par.scw.cloud": {"auth": auth}}}
        (tmp_path / f"{user.decode()}.json").write_text(json.dumps(config))
    report = scan(tmp_path, [key], fingerprinter=KEY)
    # "ci:" is 3 bytes, so there the key is aligned and its base64 appears whole.
    assert forms_in(report) == {"ci.json": {"base64"}, "nologin.json": {"base64 (embedded, shift 2)"},
                                "deploy.json": {"base64 (embedded, shift 1)"}}


def test_registry_secret_dumped_as_yaml_is_caught_through_its_values(tmp_path: Path) -> None:
    env = {"SCW_SECRET_KEY": "5a1c3f9e-0d2b-4c8a-9e7f-1b2c3d4e5f60"}
    pull = registry_pull_secret("apps", env=env)
    (tmp_path / "dump.yaml").write_text(yaml.safe_dump(pull))
    report = scan(tmp_path, secret_values([pull]) | env_secret_values(env), fingerprinter=KEY)
    assert not report.ok
    assert "base64" in {h.form for h in report.hits}


def test_compressed_archives_are_searched_decompressed(tmp_path: Path) -> None:
    log = b"2024-05-02T10:00:00Z level=debug token=" + base64.b64encode(VALUE) + b"\n"
    with tarfile.open(tmp_path / "logs.tar.gz", "w:gz") as tar:
        member = tarfile.TarInfo("var/log/app.log")
        member.size = len(log)
        tar.addfile(member, io.BytesIO(log))
    report = scan(tmp_path, [VALUE], fingerprinter=KEY)
    assert forms_in(report) == {"logs.tar.gz (decompressed)": {"base64"}}


def test_needles_sharing_a_prefix_are_each_reported(tmp_path: Path) -> None:
    short, long = b"k3s-token-AAAAAAAA", b"k3s-token-AAAAAAAA-node-2"
    (tmp_path / "both.txt").write_bytes(b"join with " + long)
    (tmp_path / "short.txt").write_bytes(b"join with " + short + b"!")
    report = scan(tmp_path, {short: "short", long: "long"}, fingerprinter=KEY)
    found = {(h.file, h.source) for h in report.hits}
    assert found == {("both.txt", "short"), ("both.txt", "long"), ("short.txt", "short")}


def test_values_across_read_chunk_boundaries_are_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leakgate, "_CHUNK", 4096)
    filler = random.Random(7).randbytes(4096 * 3).replace(b"T", b"t")
    for cut in (4096 - 5, 8192 - 1, 4096 * 3 - len(VALUE)):
        (tmp_path / f"at-{cut}.bin").write_bytes(filler[:cut] + VALUE + filler[cut:])
    report = scan(tmp_path, [VALUE], fingerprinter=KEY)
    assert len(forms_in(report)) == 3


def test_excluded_paths_and_symlinks_out_of_the_run_are_not_searched(tmp_path: Path) -> None:
    run, outside = tmp_path / "run", tmp_path / "outside.txt"
    (run / "cache").mkdir(parents=True)
    outside.write_bytes(VALUE)
    (run / "cache" / "x.txt").write_bytes(VALUE)
    (run / "link.txt").symlink_to(outside)
    report = scan(run, [VALUE], exclude=[run / "cache"], fingerprinter=KEY)
    assert report.ok and report.files_scanned == 0


def test_quarantine_moves_the_run_aside_and_explains_without_values(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "20240502T100000Z-demo"
    run.mkdir(parents=True)
    (run / "50.ipynb").write_bytes(VALUE)
    report = scan(run, {VALUE: "secret apps/db key password"}, fingerprinter=KEY)
    moved = quarantine(run, report=report)
    assert moved == run.with_name("20240502T100000Z-demo.quarantined") and not run.exists()
    note = (moved / "QUARANTINED.txt").read_text()
    assert "Files holding secret values (1):\n- 50.ipynb\n" in note
    assert "fingerprint" not in note and no_trace_of(VALUE, note)
    assert moved.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in moved.iterdir())
    run.mkdir()
    assert quarantine(run).name == "20240502T100000Z-demo.quarantined-2"


class _CountingAnchors(dict[int, list[bytes]]):
    """The matcher's anchor table; each lookup is one candidate the 8-byte hash filter let through."""

    lookups = 0

    def get(self, key: int, default: Any = None) -> Any:  # type: ignore[override]
        self.lookups += 1
        return super().get(key, default)


def test_scan_work_is_one_hash_pass_and_rare_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What keeps the scan fast, counted instead of timed (the MB/s are in tests/benchmarks/test_leakgate_bench.py):
    every needle goes through the hash filter (no per-needle pass over the bytes), and the filter lets through
    few candidates for byte-by-byte comparison. Seeded data: the counts are the same on every run."""
    rng = random.Random(3)
    values = [rng.randbytes(rng.randint(6, 40)).hex().encode() for _ in range(300)]
    for n in range(5):
        (tmp_path / f"{n}.ipynb").write_bytes(base64.b64encode(rng.randbytes(1_500_000)))
    matchers: list[Any] = []

    class Counting(leakgate._Matcher):
        def __init__(self, owners: Any) -> None:
            super().__init__(owners)
            self.anchors = _CountingAnchors(self.anchors)
            matchers.append(self)

    monkeypatch.setattr(leakgate, "_Matcher", Counting)
    report = scan(tmp_path, values, fingerprinter=KEY)
    assert report.ok and report.bytes_scanned == 10_000_000 and report.values_checked == 300
    (matcher,) = matchers
    assert len(matcher.owners) > 5 * 300 and matcher.short == []  # every form of every value, all hashed
    assert matcher.anchors.lookups * 1000 <= report.bytes_scanned, matcher.anchors.lookups
