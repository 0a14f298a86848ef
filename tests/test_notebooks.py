"""Notebooks are thin, valid and committed without outputs; the check itself catches violations."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from recsys_lab.errors import RunError
from recsys_lab.report import check_notebook, require_thin

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.name == "retrain.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_thin(path):
    assert check_notebook(path) == []


def test_check_catches_logic_outputs_and_parameter_cells(tmp_path):
    params = new_code_cell("config = {}", metadata={"tags": ["parameters"]})
    logic = new_code_cell("def helper(x):\n    return x\nfor i in range(3):\n    pass")
    private = new_code_cell("from recsys_lab.evaluation import _hits")
    out = new_code_cell("1 + 1", execution_count=1, outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)])
    nb = new_notebook(cells=[params, logic, private, out, new_code_cell("x = 1", metadata={"tags": ["parameters"]})])
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    problems = " | ".join(check_notebook(path))
    assert "exactly one code cell tagged 'parameters', found 2" in problems
    assert "FunctionDef" in problems and "For" in problems
    assert "private recsys_lab name" in problems
    assert "has outputs" in problems
    with pytest.raises(RunError, match="not a thin notebook"):
        require_thin(path)
