"""Layers written down and checked: heavy dependencies behind one door each; models, ann and evaluation
exchange arrays and do not import each other (STYLE.md)."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "recsys_lab"
MODULES = {p.stem: p for p in PKG.glob("*.py") if p.stem not in ("__init__", "airflow_dag")}


def imports(path: Path) -> set[str]:
    """Top-level names imported anywhere in the module (``from .x`` -> ``recsys_lab.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = node.module.split(".")[0] if node.module else None
                out |= {f"recsys_lab.{base}"} if base else {f"recsys_lab.{a.name}" for a in node.names}
            elif node.module:
                out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("dependency, allowed", [
    ("lightfm", {"models", "bench"}),
    ("pynndescent", {"ann"}),
    ("numba", {"ann"}),
    ("hnswlib", {"bench"}),  # benchmark-only extra
    ("papermill", {"_execute"}),
    ("matplotlib", {"plots"}),
    ("typer", {"cli"}),
])
def test_heavy_dependencies_have_one_door(dependency, allowed):
    users = {name for name, path in MODULES.items() if dependency in imports(path)}
    assert users <= allowed, f"{dependency} imported by {sorted(users - allowed)}"


@pytest.mark.parametrize("module", ["models", "ann", "evaluation"])
def test_models_ann_evaluation_exchange_arrays_only(module):
    others = {"recsys_lab.models", "recsys_lab.ann", "recsys_lab.evaluation"} - {f"recsys_lab.{module}"}
    assert not imports(MODULES[module]) & others


@pytest.mark.parametrize("low, high", [
    ("config", {"warehouse", "features", "split", "models", "ann", "evaluation", "pipeline", "runs", "cli"}),
    ("errors", {"config", "features", "pipeline", "runs", "cli"}),
    ("features", {"pipeline", "runs", "cli"}),
    ("pipeline", {"runs", "cli", "report"}),
])
def test_lower_layers_do_not_import_higher_ones(low, high):
    assert not imports(MODULES[low]) & {f"recsys_lab.{h}" for h in high}


def test_every_public_module_declares_all():
    for name, path in MODULES.items():
        if not name.startswith("_") and name not in ("cli",):
            tree = ast.parse(path.read_text())
            assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
                       for n in tree.body), name
