"""The repository's own documentation: generated where it can be, checked where it cannot.

* ``docs/cleaning-rules.md`` is rendered from the rule registry; it must be exactly what the renderer
  gives today, and ``k3smig rules`` prints the same table.
* every test ``docs/safety.md`` cites as proof exists, under the name it is cited with;
* every relative link of the docs and the README points at a file of the repository;
* nothing in the repository points at design documents outside it.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from k3smig_lib.cli import main
from k3smig_lib.core.clean.ruledoc import DOC_PATH, rules_document, rules_table
from k3smig_lib.core.clean.rules import RULES

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
TEST_LINK = re.compile(r"\[`(test_\w+)`\]\(\.\./(tests/[\w/]+\.py)\)")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_rules_page_is_what_the_registry_renders():
    committed = (ROOT / DOC_PATH).read_text(encoding="utf-8")
    assert committed == rules_document(), "docs/cleaning-rules.md is stale: run `python scripts/write_rules_doc.py`"


def test_the_rules_page_has_one_row_per_rule_with_what_why_and_who():
    rows = [line for line in (ROOT / DOC_PATH).read_text().splitlines() if re.match(r"\| [A-Z]+\d+b? \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == list(RULES)
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        assert len(cells) == 5 and all(cells), row


def test_the_script_check_mode_says_the_page_is_current():
    script = ROOT / "scripts" / "write_rules_doc.py"
    ok = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr


def test_k3smig_rules_prints_the_table_of_the_page(capsys):
    assert main(["rules"]) == 0
    out = capsys.readouterr().out
    assert out == rules_table()
    assert out in (ROOT / DOC_PATH).read_text()


def test_k3smig_rules_with_ids_prints_only_those_rows(capsys):
    assert main(["rules", "W1", "KEEP4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| W1 |") and lines[3].startswith("| KEEP4 |")


def test_k3smig_rules_names_every_unknown_id(capsys):
    assert main(["rules", "W1", "W99", "Z1"]) != 0
    err = capsys.readouterr().err
    assert "W99" in err and "Z1" in err and "k3smig rules" in err


def test_every_safety_case_is_proven_by_a_test_that_exists():
    text = (ROOT / "docs" / "safety.md").read_text()
    links = TEST_LINK.findall(text)
    assert len(links) > 60
    missing = []
    for name, path in links:
        source = ROOT / path
        if not source.is_file() or not re.search(rf"^\s*def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert missing == []
    cases = re.findall(r"^\| (\d+) \|.*$", text, re.M)
    assert [int(c) for c in cases] == list(range(1, 31))
    for row in re.findall(r"^\| \d+ \|.*$", text, re.M):
        assert TEST_LINK.search(row), row


@pytest.mark.parametrize("page", [*DOCS, ROOT / "README.md"], ids=lambda p: p.name)
def test_relative_links_point_at_files_of_the_repository(page):
    broken = []
    for target in MD_LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == []


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    assert DOCS and all(f"](docs/{page.name})" in readme for page in DOCS)


def _tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
        return [ROOT / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):  # an exported tree without git
        skip = {".git", ".venv", ".cache", "runs", "targets", "node_modules"}
        return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]


def test_nothing_points_at_design_documents_outside_the_repository():
    # spelled in pieces so this file does not match itself
    names = ["shared" + "/design", "ARCHITECTURE" + ".md", "CLEANING" + "-RULES", "RELIABILITY" + "-CASES",
             "SANDBOX" + "-RECIPE", "PEERS" + ".md", "STYLE" + ".md"]
    pattern = re.compile("|".join(re.escape(n) for n in names))
    hits = []
    for path in _tracked_files():
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{path.relative_to(ROOT)}:{n + 1}" for n, line in enumerate(text.splitlines())
                 if pattern.search(line)]
    assert hits == [], "refer to docs/ instead"
