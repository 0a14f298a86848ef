"""Notebooks are thin, valid and committed without outputs; the check itself catches violations."""

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from recsys_lab.errors import RunError
from recsys_lab.tools.notebook_lint import check_notebook, require_thin

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert any(p.name == "retrain.ipynb" for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_are_thin(path):
    assert check_notebook(path) == []


def test_check_catches_logic_outputs_and_parameter_cells(tmp_path):
    params = new_code_cell("config = {}", metadata={"tags": ["parameters"]})
    logic = new_code_cell("def helper(x):\n    return x\nfor i in range(3):\n    pass")
    private = new_code_cell("from recsys_lab.evaluation.ranking import _hits")
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


@pytest.mark.slow  # executes a notebook on ML-100k
def test_explore_notebook_runs_on_real_data(ml100k_source, tmp_path):
    """The exploration notebook executes under papermill on MovieLens and its HTML renders the plots."""
    import papermill as pm

    from recsys_lab.report.html import export_html

    out = tmp_path / "explore.ipynb"
    pm.execute_notebook(str(NOTEBOOKS[0].parent / "explore.ipynb"), str(out), kernel_name="python3",
                        parameters={"config": {"data": {"path": str(ml100k_source),
                                                        "warehouse": str(tmp_path / "warehouse")}}},
                        progress_bar=False, cwd=str(tmp_path))
    html = export_html(out, tmp_path / "explore.html").read_text()
    assert html.count("data:image/png") >= 5  # timeline, long tails, weights, categories, cold start
    assert "Star Wars (1977)" in html  # the SQL and Polars top-items tables
    nb = nbformat.read(out, as_version=4)
    tables = [o["data"]["text/html"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "text/html" in o.get("data", {})]
    import re

    def ids_and_counts(table: str) -> list:
        return re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>(\d+)</td>", table)

    assert len(ids_and_counts(tables[-1])) == 10
    assert ids_and_counts(tables[-1]) == ids_and_counts(tables[-2])  # the SQL and the Polars answers agree


def test_lab_opens_jupyterlab_on_the_notebooks(tmp_path):
    from ..conftest import cli

    proc = cli("lab", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0 and "-m jupyterlab --notebook-dir=" in proc.stdout
    assert proc.stdout.strip().split("--notebook-dir=")[1].split()[0].endswith("notebooks")


def test_nothing_in_the_library_imports_tools():
    """The linter runs in the tests and CI, never inside a retrain: only the CLI may import recsys_lab.tools."""
    import ast

    pkg = Path(__file__).resolve().parents[2] / "recsys_lab"
    importers = []
    for path in pkg.rglob("*.py"):
        if path.relative_to(pkg).parts[0] in ("cli", "tools"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "recsys_lab.tools" or n.startswith("recsys_lab.tools.") for n in names):
                importers.append(str(path.relative_to(pkg)))
    assert importers == []
    assert len(NOTEBOOKS) >= 5  # every shipped notebook is linted above
