"""The notebook generator writes parameter defaults and annotations as Python, whatever the strings hold."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Literal, Optional

import nbformat
import papermill
import pytest
from pydantic import BaseModel, Field

ROOT = Path(__file__).resolve().parents[2]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("write_notebooks", ROOT / "scripts" / "write_notebooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


class Tricky(BaseModel):
    """Defaults the old ``json.dumps(...).replace("false", "False")`` rendering got wrong."""

    words: str = Field("false, true or none: null", description="a string with JSON words in it")
    quoted: str = Field('say "true" \\ not false', description="quotes and a backslash")
    unicode: str = Field("café\tnull\u2028end", description="non-ASCII, a tab and a line separator")
    flag: bool = Field(True, description="a real bool")
    unset: Optional[str] = Field(None, description="None as the default")  # noqa: UP045 - the typing form too
    maybe: int | None = Field(None, description="the | form")
    mode: Literal["false", "true"] = Field("false", description="a Literal of words")
    names: list[str] = Field(default_factory=lambda: ["none", "True"], description="a list of str")
    rewrites: dict[str, str] = Field(default_factory=lambda: {"false/": "true/"}, description="a dict of str")
    ratio: float = Field(0.1, description="a float")


def test_string_defaults_holding_false_true_and_none_stay_strings() -> None:
    cell = GEN.parameters_cell(list(Tricky.model_fields), Tricky)
    lines = dict(zip(Tricky.model_fields, cell.splitlines(), strict=True))
    assert lines["words"] == 'words: str = "false, true or none: null"  # a string with JSON words in it'
    assert lines["flag"].startswith("flag: bool = True  #")
    assert lines["unset"].startswith("unset: str = None  #") and lines["maybe"].startswith("maybe: int = None  #")
    assert lines["mode"].startswith('mode: str = "false"  #')
    assert lines["names"].startswith('names: list = ["none", "True"]  #')
    assert lines["rewrites"].startswith('rewrites: dict = {"false/": "true/"}  #')
    namespace: dict[str, object] = {}
    exec(cell, namespace)  # noqa: S102 - the cell a notebook runs: annotations are evaluated too
    assert {k: namespace[k] for k in Tricky.model_fields} == Tricky().model_dump()


def test_papermill_reads_every_parameter_as_written(tmp_path: Path) -> None:
    cell = GEN.parameters_cell(list(Tricky.model_fields), Tricky)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "tricky.ipynb"))
    seen = papermill.inspect_notebook(str(tmp_path / "tricky.ipynb"))
    assert list(seen) == list(Tricky.model_fields)
    for name, field in Tricky.model_fields.items():
        assert ast.literal_eval(seen[name]["default"]) == field.get_default(call_default_factory=True), name
        assert seen[name]["help"] == field.description


@pytest.mark.parametrize("text", ["", "false", "a'b", 'a"b', "a\\b", "\\n", "\x00\x7f", "\u2028", "😀 é", "True\r\n"])
def test_string_literal_reads_back_as_the_same_string(text: str) -> None:
    assert ast.literal_eval(GEN.python_literal(text)) == text


def test_a_default_papermill_would_misread_is_refused_naming_the_field() -> None:
    class Hash(BaseModel):
        colour: str = Field("#ff0000", description="a default with a hash sign")

    class Equals(BaseModel):
        query: str = Field("", description="k=v pairs")

    with pytest.raises(ValueError, match=r"colour: papermill does not read"):
        GEN.parameters_cell(["colour"], Hash)
    with pytest.raises(ValueError, match=r"query: papermill does not read"):
        GEN.parameters_cell(["query"], Equals)


def test_defaults_and_annotations_a_cell_cannot_hold_are_refused_with_the_fix() -> None:
    class Odd(BaseModel):
        where: Path = Field(Path("/tmp"), description="a path")
        either: int | str = Field(1, description="two types")
        big: float = Field(float("inf"), description="not finite")

    with pytest.raises(ValueError, match=r"where: .*annotation .* use str, int"):
        GEN.parameters_cell(["where"], Odd)
    with pytest.raises(ValueError, match=r"either: annotation"):
        GEN.parameters_cell(["either"], Odd)
    with pytest.raises(ValueError, match=r"big: default inf has no Python literal"):
        GEN.parameters_cell(["big"], Odd)
    with pytest.raises(TypeError, match=r"cannot be written into a parameters cell"):
        GEN.python_literal({1, 2})
