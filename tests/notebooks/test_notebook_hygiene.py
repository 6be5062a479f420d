"""Static checks that keep the notebooks thin (docs/architecture.md): logic lives in k3smig_lib, not here."""

import ast
import json
from pathlib import Path

import pytest

from k3smig_lib.core.config import Settings
from k3smig_lib.phases.catalog import PHASES

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FORBIDDEN = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Try, ast.For, ast.While, ast.With,
             ast.Lambda, ast.If)


def code_cells(path):
    nb = json.loads(path.read_text())
    return nb, [c for c in nb["cells"] if c["cell_type"] == "code"]


def test_there_is_one_notebook_per_phase():
    assert [p.stem for p in NOTEBOOKS] == list(PHASES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path):
    _, cells = code_cells(path)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_typed_parameters_cell(path):
    _, cells = code_cells(path)
    first = cells[0]
    assert "parameters" in first["metadata"].get("tags", [])
    tree = ast.parse("".join(first["source"]))
    lines = "".join(first["source"]).splitlines()
    for node, line in zip(tree.body, lines, strict=True):
        assert isinstance(node, ast.AnnAssign), f"{path.name}: parameters must be `name: type = value  # help`"
        assert "  # " in line, f"{path.name}: parameter {line!r} has no help comment"
        name = node.target.id
        assert name in Settings.model_fields, f"{path.name}: {name} is not a Settings field"
        default = Settings.model_fields[name].get_default(call_default_factory=True)
        assert ast.literal_eval(node.value) == default, f"{path.name}: default of {name} drifted from Settings"


def violations(cells):
    """Why a notebook is not thin: logic, shell escapes, cells that do more than one library call."""
    found = []
    for i, cell in enumerate(cells[1:], 1):
        src = "".join(cell["source"])
        if any(line.lstrip().startswith(("!", "%")) for line in src.splitlines()):
            found.append(f"cell {i}: shell escape or magic")
            continue
        tree = ast.parse(src)
        found += [f"cell {i}: {type(n).__name__}" for n in ast.walk(tree) if isinstance(n, FORBIDDEN)]
        stmts = [n for n in tree.body if not isinstance(n, ast.Import | ast.ImportFrom)]
        if len(stmts) != 1:
            found.append(f"cell {i}: {len(stmts)} statements (one library call per cell)")
            continue
        value = getattr(stmts[0], "value", None)
        if not isinstance(value, ast.Call) or ast.unparse(value.func).split(".")[0] not in {"k3smig", "phase"}:
            found.append(f"cell {i}: not a call of k3smig_lib")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_cells_hold_no_logic(path):
    _, cells = code_cells(path)
    assert violations(cells) == []


def test_the_thinness_check_catches_logic_in_a_notebook():
    cells = [
        {"source": ["apply: bool = False  # x"]},
        {"source": ["def helper():\n    return 1\n"]},
        {"source": ["!kubectl get pods"]},
        {"source": ["x = 1\ny = phase.tools()"]},
        {"source": ["for o in objs:\n    phase.tools()"]},
    ]
    found = violations(cells)
    assert any("FunctionDef" in f for f in found)
    assert any("shell escape" in f for f in found)
    assert any("2 statements" in f for f in found)
    assert any("For" in f for f in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_only_the_public_package(path):
    _, cells = code_cells(path)
    for cell in cells:
        for node in ast.walk(ast.parse("".join(cell["source"]))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert mods == ["k3smig_lib"], f"{path.name} imports {mods}"


def test_notebooks_are_what_the_generator_writes():
    """Byte for byte: cells, cell ids, tags and metadata, as `make notebooks` writes them."""
    import importlib.util

    import nbformat

    spec = importlib.util.spec_from_file_location("write_notebooks", ROOT / "scripts" / "write_notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert sorted(f"{name}.ipynb" for name in mod.SPEC) == [p.name for p in NOTEBOOKS]
    for name, nb_spec in mod.SPEC.items():
        fresh = nbformat.writes(mod.notebook(name, nb_spec)) + "\n"  # nbformat.write ends the file with a newline
        committed = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert committed == fresh, f"{name}: regenerate with `make notebooks`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_sees_every_declared_parameter_with_its_help(path):
    import papermill

    _, cells = code_cells(path)
    declared = [n.target.id for n in ast.parse("".join(cells[0]["source"])).body]
    inspected = papermill.inspect_notebook(str(path))
    assert list(inspected) == declared
    assert all(p["help"] for p in inspected.values())
