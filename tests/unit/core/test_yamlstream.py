"""Streaming export reads: the same values as the whole-file reader, a List's items one by one, same bounds."""

import json
from pathlib import Path

import pytest

from k3smig_lib.core import jsonstream, yamlio, yamlstream
from k3smig_lib.core.yamlstream import stream_values
from k3smig_lib.errors import LimitError, SourceError
from k3smig_lib.sandbox.scale import write_scale_export

ROOT = Path(__file__).resolve().parents[3]
FILES = sorted(p for pattern in ("examples/**/*.yaml", "tests/fixtures/**/*.yaml", "tests/fixtures/**/*.json")
               for p in ROOT.glob(pattern))


def whole(path: Path) -> list:
    """Documents as the whole-file reader builds them, a List's items spliced in."""
    text = yamlio.read_text(path, error=SourceError)
    docs = ([yamlio.load_json(text, str(path), error=SourceError)] if path.suffix == ".json"
            else [d.data for d in yamlio.load_yaml_documents(text, str(path), error=SourceError)])
    out: list = []
    for doc in docs:
        listed = isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List")
        out += doc["items"] if listed and isinstance(doc.get("items"), list) else [doc]
    return out


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
def test_every_bundled_file_reads_the_same_as_the_whole_file_reader(fast):
    assert len(FILES) > 50
    for path in FILES:
        assert [v.data for v in stream_values(path, error=SourceError, fast=fast)] == whole(path), path


def test_list_items_come_one_by_one_with_their_origin_and_spill_past_the_memory_window(tmp_path):
    count = jsonstream.SPILL_AFTER * 3
    path = write_scale_export(tmp_path / "list.yaml", count, "list")
    values = list(stream_values(path, error=SourceError))
    assert [v.item for v in values] == list(range(1, count + 1))
    assert values[5].origin(path) == f"{path}, document 1 (line 1), item 6"
    assert [v.data for v in values] == whole(path)


@pytest.mark.parametrize("layout", ["json", "multidoc"])
def test_json_lists_and_multidoc_files_stream_across_chunk_boundaries(tmp_path, layout):
    path = write_scale_export(tmp_path / f"x.{'json' if layout == 'json' else 'yaml'}", 400, layout)
    assert path.stat().st_size > jsonstream.CHUNK  # several buffer refills
    values = [v.data for v in stream_values(path, error=SourceError)]
    expected = json.loads(path.read_text())["items"] if layout == "json" else whole(path)
    assert values == expected and len(values) == 400


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_document_with_items_that_is_not_a_list_comes_back_whole(tmp_path, suffix):
    items = [{"n": i} for i in range(jsonstream.SPILL_AFTER + 10)]
    doc = {"apiVersion": "example.io/v1", "items": items, "kind": "Inventory", "metadata": {"name": "a"}}
    path = tmp_path / f"inv{suffix}"
    path.write_text(json.dumps(doc))  # JSON is YAML too
    assert [v.data for v in stream_values(path, error=SourceError)] == [doc]


def test_kind_before_items_streams_at_once(tmp_path):
    path = tmp_path / "l.yaml"
    path.write_text("kind: List\napiVersion: v1\nitems:\n- {kind: ConfigMap, metadata: {name: a}}\n"
                    "- {kind: ConfigMap, metadata: {name: b}}\n")
    assert [(v.item, v.data["metadata"]["name"]) for v in stream_values(path, error=SourceError)] == [(1, "a"),
                                                                                                      (2, "b")]


LAUGHS = "\n".join(
    ["apiVersion: v1", "kind: List", "items:", "- a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["  z: [*i, *i, *i, *i, *i, *i, *i, *i, *i]"]
)


@pytest.mark.parametrize("fast", [True, False], ids=["libyaml", "pure-python"])
def test_a_billion_laughs_list_fails_at_the_alias_that_crosses_the_limit(tmp_path, fast):
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS + "\n")
    with pytest.raises(LimitError, match=str(yamlio.MAX_ALIAS_NODES)):
        list(stream_values(path, error=SourceError, fast=fast))


def test_bad_files_get_the_whole_file_readers_messages(tmp_path):
    dup = tmp_path / "dup.yaml"
    dup.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n  k: one\n  k: two\n")
    with pytest.raises(SourceError, match="dup.yaml: line 6, column 3: duplicate key 'k' \\(first at line 5\\)"):
        list(stream_values(dup, error=SourceError))
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "List", "items": [{"a": 1},\n]}')
    with pytest.raises(SourceError, match="bad.json: line 2, column 1"):
        list(stream_values(bad, error=SourceError))
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(LimitError, match="nesting"):
        list(stream_values(deep, error=SourceError))
    recursive = tmp_path / "rec.yaml"
    recursive.write_text("a: &a [x, *a]\n")
    with pytest.raises(LimitError, match="refers to the node that contains it"):
        list(stream_values(recursive, error=SourceError))


def test_a_file_over_the_callers_limit_is_refused_from_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("".join(f"a{i:02d}: 1\n" for i in range(50)))
    with pytest.raises(LimitError, match="big.yaml has 350 bytes, more than the limit of 100 bytes"):
        list(stream_values(path, error=SourceError, file_limit=100))
    with pytest.raises(LimitError, match="larger than the limit of 10 bytes"):
        list(stream_values(path, error=SourceError, file_limit=1000, limit=10))


def test_the_pure_python_parser_is_used_with_a_notice(tmp_path, caplog):
    yamlstream._noticed.clear()
    path = tmp_path / "cm.yaml"
    path.write_text("kind: ConfigMap\nmetadata: {name: a}\n")
    assert [v.data for v in stream_values(path, error=SourceError, fast=False)] == [
        {"kind": "ConfigMap", "metadata": {"name": "a"}}]
    assert [v.data for v in stream_values(path, error=SourceError, fast=False)]
    assert sum("pure-Python parser" in r.message for r in caplog.records) == 1


def test_the_scale_export_is_deterministic_and_has_the_examples_mix(tmp_path):
    one = write_scale_export(tmp_path / "a.yaml", 500, "multidoc").read_bytes()
    assert one == write_scale_export(tmp_path / "b.yaml", 500, "multidoc").read_bytes()
    values = [v.data for v in stream_values(tmp_path / "a.yaml", error=SourceError)]
    kinds = {o["kind"] for o in values}
    assert {"Event", "EndpointSlice", "Pod", "ReplicaSet", "Certificate", "Secret"} <= kinds
    assert len({(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in values}) == 500
    assert len({o["metadata"].get("uid") for o in values}) == 500
