"""Bounded, strict reading of YAML and JSON written by others."""

import codecs

import pytest

from k3smig_lib.core import yamlio
from k3smig_lib.core.yamlio import load_json, load_yaml, load_yaml_documents, read_text
from k3smig_lib.errors import LimitError, SourceError

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    + ["z: [*i, *i, *i, *i, *i, *i, *i, *i, *i]"]
)


def test_billion_laughs_fails_fast_naming_the_limit():
    with pytest.raises(LimitError) as err:
        list(load_yaml_documents(LAUGHS, "laughs.yaml", error=SourceError))
    assert "laughs.yaml" in str(err.value) and str(yamlio.MAX_ALIAS_NODES) in str(err.value)


def test_a_few_anchors_and_merge_keys_are_fine():
    text = "base: &b {a: 1, b: 2}\nx:\n  <<: *b\n  b: 3\ny: *b\n"
    assert load_yaml(text, "m.yaml", error=SourceError) == {"base": {"a": 1, "b": 2}, "x": {"a": 1, "b": 3},
                                                            "y": {"a": 1, "b": 2}}


def test_a_recursive_alias_is_refused():
    with pytest.raises(LimitError, match="refers to the node that contains it"):
        load_yaml("a: &a [x, *a]\n", "r.yaml", error=SourceError)


def test_duplicate_yaml_keys_are_refused_with_the_line():
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: one\n  k: two\n"
    with pytest.raises(SourceError) as err:
        load_yaml(text, "cm.yaml", error=SourceError)
    assert "cm.yaml: line 7, column 3: duplicate key 'k' (first at line 6)" in str(err.value)


def test_duplicate_json_keys_are_refused_with_the_line():
    text = '{\n "kind": "ConfigMap",\n "data": {\n   "k": "one",\n   "k": "two"\n }\n}\n'
    with pytest.raises(SourceError, match=r"cm.json: line 3: duplicate key 'k'"):
        load_json(text, "cm.json", error=SourceError)


def test_syntax_errors_keep_line_and_column():
    with pytest.raises(SourceError, match=r"bad.yaml: line 4, column 2: expected"):
        load_yaml("a: 1\nb:\n  - [x\nc: 2\n", "bad.yaml", error=SourceError)
    with pytest.raises(SourceError, match=r"bad.json: line 2, column 1: "):
        load_json('{"a": 1,\n}', "bad.json", error=SourceError)


def test_documents_carry_their_first_line():
    docs = list(load_yaml_documents("a: 1\n---\nb: 2\n---\n\n\nc: 3\n", "m.yaml", error=SourceError))
    assert [(d.data, d.line) for d in docs] == [({"a": 1}, 1), ({"b": 2}, 3), ({"c": 3}, 7)]


def test_deep_nesting_is_a_limit_not_a_traceback():
    with pytest.raises(LimitError, match="nesting"):
        load_yaml("[" * 100_000 + "]" * 100_000, "deep.yaml", error=SourceError)
    with pytest.raises(LimitError, match="nesting"):
        load_json("[" * 100_000 + "]" * 100_000, "deep.json", error=SourceError)


def test_non_utf8_files_are_named_with_the_byte_and_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("a: 1\nb: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"latin1.yaml is not UTF-8: byte 0xe9 at offset 11 \(line 2\)"):
        read_text(path, error=SourceError)
    utf16 = tmp_path / "ps.yaml"
    utf16.write_bytes(codecs.BOM_UTF16_LE + "a: 1\n".encode("utf-16-le"))
    with pytest.raises(SourceError, match="PowerShell"):
        read_text(utf16, error=SourceError)
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(codecs.BOM_UTF8 + b"a: 1\n")
    assert read_text(bom, error=SourceError) == "a: 1\n"


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * 2048)
    with pytest.raises(LimitError, match="2048 bytes, more than the limit of 1024 bytes"):
        read_text(path, error=SourceError, limit=1024)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(SourceError, match="is a folder, not a file"):
        read_text(tmp_path, error=SourceError)
