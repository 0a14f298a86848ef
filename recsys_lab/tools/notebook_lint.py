"""The thin-notebook check: one `parameters` cell, then calls into recsys_lab (run by the tests and CI, never by a retrain)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat

from recsys_lab.errors import RunError

__all__ = ['check_notebook', 'require_thin']

_PRIVATE_IMPORT = re.compile(r"(from\s+recsys_lab[\w.]*\s+import\s+.*\b_\w+)|(recsys_lab(\.\w+)*\._\w+)")


def check_notebook(path: str | Path) -> list[str]:
    """Problems that break the thin-notebook rules (empty list: the notebook is fine).

    Rules: valid nbformat; exactly one code cell tagged ``parameters``; no outputs or execution counts
    committed; no ``def`` / ``class`` / ``for`` / ``while`` in code cells (logic lives in ``recsys_lab``);
    no import of private ``recsys_lab`` names.

    Parameters
    ----------
    path : str or Path
        An ``.ipynb`` file (nbformat 4).

    Returns
    -------
    list of str
        One message per problem, naming the cell index; empty when the notebook is thin.
    """
    nb = nbformat.read(str(path), as_version=4)
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        problems.append(f"invalid nbformat: {exc.message}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"expected exactly one code cell tagged 'parameters', found {len(tagged)}")
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.get("outputs") or c.get("execution_count"):
            problems.append(f"cell {i}: has outputs (commit notebooks without outputs)")
        src = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            problems.append(f"cell {i}: syntax error ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While)):
                problems.append(f"cell {i}: {type(node).__name__} in a notebook; move the logic into recsys_lab")
        if _PRIVATE_IMPORT.search(c.source):
            problems.append(f"cell {i}: uses a private recsys_lab name")
    return problems


def require_thin(path: str | Path) -> None:
    """Raise :class:`RunError` listing :func:`check_notebook` problems, if any.

    Parameters
    ----------
    path : str or Path
        An ``.ipynb`` file (nbformat 4).

    Raises
    ------
    RunError
        The notebook breaks a thin-notebook rule; the message names the file and every problem.
    """
    problems = check_notebook(path)
    if problems:
        raise RunError(f"{path}: not a thin notebook: " + "; ".join(problems))
