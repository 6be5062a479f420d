"""The demo run's reports, as an auditor meets them: alone, offline, signed, re-renderable, and reconciled."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from k3smig_lib.cli import DEMO_PARAMS, main
from k3smig_lib.core import signing
from k3smig_lib.core.config import PACKAGE_ROOT
from k3smig_lib.phases.catalog import PHASES
from k3smig_lib.runbook import runner
from k3smig_lib.runbook.record import anchor_name, verify_run
from k3smig_lib.runbook.rerender import rerender

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
import invariants  # noqa: E402

pytestmark = pytest.mark.notebooks
#: A reference that makes a browser fetch something from elsewhere (a link in a table's text is not one).
REMOTE = re.compile(r"""(?:src|href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?(?:https?:)?//"""
                    r"""|@import|<script|<link\b|<iframe""", re.I)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    outcome = runner.run(DEMO_PARAMS, runs_root=work / "runs", overrides={"target_dir": str(work / "target")})
    assert outcome.status == "Completed", outcome.failed_phase
    return outcome


def pages(run_dir):
    return sorted(run_dir.glob("*.html"))


def test_no_report_references_a_remote_url_or_runs_a_script(demo):
    found = {p.name: REMOTE.findall(p.read_text()) for p in pages(demo.run_dir)}
    assert len(found) == len(PHASES) + 1
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_a_report_copied_out_alone_says_which_run_mode_versions_and_outcome_it_shows(demo, tmp_path):
    ledger = json.loads((demo.run_dir / "run.json").read_text())
    for phase in PHASES:
        alone = tmp_path / f"{phase}.html"
        shutil.copy(demo.run_dir / f"{phase}.html", alone)
        text = alone.read_text()
        head, _, body = text.partition("<main>")
        title = re.search(r"<title>(.*?)</title>", text).group(1)
        assert phase[:2] in title and ledger["run_id"] in title and title != "Notebook"
        for fact in (ledger["run_id"], "environment", "demo", "apply (writes to the target)", ledger["created"],
                     ledger["code_version"], ledger["parameters_sha256"], "phase started (UTC)", "Summary:",
                     'href="index.html"'):
            assert fact in head, f"{phase}: {fact!r} is not above the tables"
        result = json.loads((demo.run_dir / "artifacts" / phase / "phase_result.json").read_text())
        assert f"s-{result['report_status'].replace(' ', '-')}" in head
        assert "Dry run is the default" not in text


def test_reports_hold_no_machine_path_and_no_progress_line(demo):
    home = str(Path.home())
    for path in [*pages(demo.run_dir), *demo.run_dir.glob("*.ipynb")]:
        text = path.read_text()
        if path.suffix == ".ipynb":  # cell outputs only: the injected parameters are the run's inputs
            outputs = [o for c in json.loads(text)["cells"] for o in c.get("outputs", [])]
            text = json.dumps(outputs)
            streams = "".join("".join(o["text"]) for o in outputs if o["output_type"] == "stream")
            assert not re.search(r": \d+/\d+$", streams, re.M), f"{path.name}: progress lines"
        assert str(PACKAGE_ROOT) not in text, path.name
        assert home + "/" not in text, path.name


#: Size budget of the reports (bytes): the demo measures 1,380 of style, ~10 KB for a page without data,
#: 235 KB for the largest page (phase 40, three charts) and 600 KB for all eleven pages.
STYLE_BUDGET, EMPTY_PAGE_BUDGET, PAGE_BUDGET, RUN_BUDGET = 4_000, 25_000, 400_000, 1_200_000


def test_reports_stay_within_their_size_budget(demo):
    sizes = {p.name: p.stat().st_size for p in pages(demo.run_dir)}
    for name in sizes:
        styles = re.findall(r"<style>(.*?)</style>", (demo.run_dir / name).read_text(), re.S)
        assert len(styles) == 1 and len(styles[0]) < STYLE_BUDGET, name  # one small shared style, not per table
    for phase in ("10_provision_infrastructure", "20_configure_k3s", "80_configure_network"):
        assert sizes[f"{phase}.html"] < EMPTY_PAGE_BUDGET, phase
    assert {name: size for name, size in sizes.items() if size >= PAGE_BUDGET} == {}
    assert sum(sizes.values()) < RUN_BUDGET


def test_statuses_say_not_run_for_phases_that_did_nothing_and_the_verdict_is_pass(demo):
    for phase in ("10_provision_infrastructure", "20_configure_k3s"):
        result = json.loads((demo.run_dir / "artifacts" / phase / "phase_result.json").read_text())
        assert result["report_status"] == "NOT RUN" and result["not_run"]
    assert demo.verdict == "PASS"


def test_evidence_is_one_click_away(demo):
    export = (demo.run_dir / "40_export_manifests.html").read_text()
    diffs = re.findall(r'href="(artifacts/40_export_manifests/diffs/[^"]+)"', export)
    assert diffs and all((demo.run_dir / d).is_file() for d in diffs)
    data = (demo.run_dir / "70_migrate_data.html").read_text()
    manifests = set(re.findall(r'href="(artifacts/70_migrate_data/manifests/[^"]+)"', data))
    assert len(manifests) == 10 and all((demo.run_dir / m).is_file() for m in manifests)
    index = (demo.run_dir / "index.html").read_text()
    assert "Timeline" in index and index.count('class="bar') == len(PHASES)
    for chart_phase in ("00_preflight", "40_export_manifests", "70_migrate_data"):
        assert "data:image/png;base64" in (demo.run_dir / f"{chart_phase}.html").read_text(), chart_phase


def test_the_numbers_of_the_run_reconcile(demo):
    assert invariants.problems(demo.run_dir) == []


def test_the_run_is_signed_and_verifies_against_its_target_anchor(demo, capsys):
    assert verify_run(demo.run_dir, against_target=True) == []
    anchor = Path(json.loads((demo.run_dir / "run.json").read_text())["parameters"]["target_dir"])
    record = json.loads((anchor / "k3smig-runs" / f"{demo.run_dir.name}.json").read_text())
    assert record["digest"] == f"sha256:{demo.digest}"
    assert anchor_name(demo.run_dir.name).startswith("k3smig-run-")
    index = (demo.run_dir / "index.html").read_text()
    ledger = json.loads((demo.run_dir / "run.json").read_text())
    assert ledger["signing"]["keyid"] in index
    assert main(["verify", str(demo.run_dir), "--against-target"]) == 0
    assert "verified" in capsys.readouterr().out


def test_the_anchor_catches_a_run_folder_replaced_whole(demo, tmp_path):
    copy = tmp_path / demo.run_dir.name
    shutil.copytree(demo.run_dir, copy)
    ledger = json.loads((copy / "run.json").read_text())
    record = Path(ledger["parameters"]["target_dir"]) / "k3smig-runs" / f"{copy.name}.json"
    saved = record.read_text()
    try:
        record.write_text(json.dumps({"run_id": copy.name, "digest": "sha256:" + "0" * 64}))
        assert any(p.startswith("anchor: the target records") for p in verify_run(copy, against_target=True))
    finally:
        record.write_text(saved)


def test_reports_re_render_byte_for_byte_and_an_edited_report_is_caught(demo, tmp_path, capsys):
    assert rerender(demo.run_dir, out=tmp_path / "pages") == []
    for name in ("index.html", "40_export_manifests.html"):
        assert (tmp_path / "pages" / name).read_bytes() == (demo.run_dir / name).read_bytes()
    assert main(["report", str(demo.run_dir)]) == 0
    copy = tmp_path / "copy"
    shutil.copytree(demo.run_dir, copy)
    page = copy / "90_validate_migration.html"  # a hand-edited page: the ledger and the signature catch it
    page.write_text(page.read_text().replace("PASS", "PASS!"))
    assert "differs from the signed record: 90_validate_migration.html" in verify_run(copy)
    notebook = copy / "90_validate_migration.ipynb"  # a page derived from an edited notebook: the re-render does
    notebook.write_text(notebook.read_text().replace(">PASS<", ">FAIL<"))
    shutil.copy(demo.run_dir / "90_validate_migration.html", page)
    assert rerender(copy) == ["90_validate_migration.html: the re-rendered page differs from the one the ledger "
                              "recorded"]
    assert hashlib.sha256(page.read_bytes()).hexdigest() == json.loads((copy / "run.json").read_text())[
        "files"]["90_validate_migration.html"]


def readme_recipe() -> str:
    """The README's verification recipe, exactly as an auditor copies it."""
    readme = (PACKAGE_ROOT / "README.md").read_text()
    block = readme.split("<!-- verify-without-k3smig -->", 1)[1]
    return block.split("```bash\n", 1)[1].split("```", 1)[0]


def run_recipe(run_dir: Path, key: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", readme_recipe()], env={**os.environ, "RUN": str(run_dir), "KEY": str(key)},
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_third_party_verifies_the_run_with_jq_openssl_and_coreutils_only(demo, tmp_path):
    key = tmp_path / "operator.pem"  # the operator's key as the auditor received it, not the run's copy
    key.write_bytes(signing.public_pem(signing.signing_key(create=False).public_key()))
    ok = run_recipe(demo.run_dir, key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Signature Verified Successfully" in ok.stdout and f"run digest: sha256:{demo.digest}" in ok.stdout
    assert json.loads(ok.stdout.split("run digest:")[0].split("Successfully", 1)[1])["verdict"] == "PASS"

    forged = tmp_path / "forged"  # a report edited: its hash no longer matches the signed one
    shutil.copytree(demo.run_dir, forged)
    page = forged / "90_validate_migration.html"
    page.write_text(page.read_text().replace("PASS", "PASS!"))
    bad = run_recipe(forged, key)
    assert bad.returncode != 0 and "90_validate_migration.html: FAILED" in bad.stdout + bad.stderr

    extra = tmp_path / "extra"  # a symlink added to the folder
    shutil.copytree(demo.run_dir, extra)
    (extra / "evidence.html").symlink_to("/etc/hostname")
    assert run_recipe(extra, key).returncode != 0

    other = tmp_path / "other.pem"  # a key the run was not signed with
    other.write_bytes(signing.public_pem(signing.Ed25519PrivateKey.generate().public_key()))
    wrong = run_recipe(demo.run_dir, other)
    assert wrong.returncode != 0 and "signed by another key" in wrong.stdout
