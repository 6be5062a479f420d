"""Tables for people: no row numbers, text left and numbers right, one status vocabulary, long tables folded."""

import re

import pandas as pd

from k3smig_lib.core.htmltable import FOLD_ROWS, HEAD_ROWS, MAX_INLINE_ROWS, human_bytes, status_word, table_html


def test_no_row_number_column_and_numbers_are_marked_for_right_alignment():
    html = table_html(pd.DataFrame([{"volume": "shop/db", "bytes": 4096}]))
    assert "<th>volume</th><th>bytes</th>" in html and "<th></th>" not in html
    assert '<td>shop/db</td><td class="n">4096</td>' in html
    assert "style" not in html  # the page's one style sheet decides, not each table
    widened = table_html(pd.DataFrame([{"key": "a", "length": 1679}, {"key": "b", "length": None}]))
    assert '<td class="n">1679</td>' in widened and "1679.0" not in widened


def test_statuses_are_worded_from_one_vocabulary():
    html = table_html(pd.DataFrame([{"check": "a", "ok": True}, {"check": "b", "ok": False},
                                    {"check": "c", "ok": "NOT RUN: dry run"}]))
    assert '<td class="s-PASS">PASS</td>' in html and '<td class="s-FAIL">FAIL</td>' in html
    assert '<td class="s-NOT-RUN">NOT RUN: dry run</td>' in html
    assert status_word("warning", "severity") == "DEGRADED" and status_word("True", "note") == ""


def test_a_long_table_shows_its_worst_rows_first_and_folds_the_rest():
    rows = [{"object": f"o{i}", "result": "PASS"} for i in range(40)] + [{"object": "bad", "result": "FAIL"}]
    frame = pd.DataFrame(rows)
    frame.attrs["csv"] = "artifacts/90_validate_migration/apps.csv"
    html = table_html(frame)
    visible, folded = html.split("<details", 1)
    assert visible.count("<tr>") == HEAD_ROWS + 1 and visible.index("bad") < visible.index("o0")
    assert "show all 41 rows" in folded and folded.count("<tr>") == 41 + 1
    assert 'href="artifacts/90_validate_migration/apps.csv"' in html
    assert FOLD_ROWS < 41


def test_a_very_long_table_is_linked_as_csv_only():
    frame = pd.DataFrame([{"object": f"o{i}"} for i in range(MAX_INLINE_ROWS + 1)])
    frame.attrs["csv"] = "artifacts/40_export_manifests/custody.csv"
    html = table_html(frame)
    assert "<details" not in html and html.count("<tr>") == HEAD_ROWS + 1 and "custody.csv" in html


def test_evidence_columns_link_to_their_files_and_a_pivot_keeps_its_row_labels():
    frame = pd.DataFrame([{"object": "Deployment/a/b", "diff": "diffs/Deployment__a__b.diff"}])
    frame.attrs["links"] = {"diff": "artifacts/40_export_manifests/"}
    assert '<a href="artifacts/40_export_manifests/diffs/Deployment__a__b.diff">' in table_html(frame)
    pivot = pd.DataFrame({"kind": ["Pod", "Secret"], "n": [2, 3]}).set_index("kind")
    assert re.search(r"<th>kind</th><th>n</th>", table_html(pivot))


def test_byte_counts_read_in_binary_units_with_the_exact_count_kept():
    frame = pd.DataFrame([{"volume": "a", "bytes": 2147483648, "free": None}, {"volume": "b", "bytes": 98530.0,
                                                                              "free": 512}])
    frame.attrs["sizes"] = ["bytes", "free"]
    html = table_html(frame)
    assert '<td class="n" title="2147483648 bytes">2.0 GiB</td>' in html
    assert '<td class="n" title="98530 bytes">96.2 KiB</td>' in html and "<td></td>" in html
    assert human_bytes(512) == "512 bytes" and human_bytes(5 * 2**40) == "5.0 TiB"
