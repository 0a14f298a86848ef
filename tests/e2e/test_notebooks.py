"""Every notebook in notebooks/ runs to the end on a generated log (recsys_lab.data.synthetic), in the unit tier.

The retrain notebook runs through ``runs.execute.execute`` (the in-process engine, as ``recsys-lab retrain``
does) with fast settings and is promoted; the notebooks that read runs (cold start, compare models, embeddings)
then run on that project, and the exploration notebook on the same log. Each is executed with papermill's
in-process engine and checked to complete without an error output. Their runs on the real MovieLens 100k, with
assertions on the figures they show, are in the slow tier (test_cold_start, test_embeddings, test_lifecycle,
tools/test_notebook_lint).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from recsys_lab.runs import engine
from recsys_lab.runs.execute import execute
from recsys_lab.runs.registry import production_id

from ..conftest import ROOT, generated_config

NOTEBOOKS = ROOT / "notebooks"
FAST = {"model.no_components": 8, "eval.baselines": ["popularity"], "eval.bootstrap": 100,
        "eval.item_category": "category", "eval.user_groups": [],
        "gate.min": {}, "gate.max_regression": {}, "gate.not_worse_than": []}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> tuple[Path, dict]:
    """A project with one promoted run of the retrain notebook on a generated log of 150 users and 120 items in 4
    categories (enough items per category for the probes: see test_a_probe_without_reference_can_be_drawn)."""
    d = tmp_path_factory.mktemp("notebooks")
    cfg = generated_config(d, 150, 120, 3_000, seed=4, categories=4, **FAST)
    result = execute(cfg, runs_dir=d / "runs", notebook=NOTEBOOKS / "retrain.ipynb", promote_if_passed=True)
    assert result.status == "succeeded", result.reason
    assert result.promoted and production_id(d / "runs") == result.run_id
    return d, cfg.to_dict()


def _run(name: str, out_dir: Path, **parameters) -> nbformat.NotebookNode:
    """Execute ``notebooks/<name>`` in process with ``parameters``; the executed notebook, checked error-free."""
    engine.register()
    out = out_dir / name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.execute_notebook(str(NOTEBOOKS / name), str(out), parameters=parameters, engine_name=engine.ENGINE_NAME,
                            progress_bar=False, log_output=False, cwd=str(out_dir))
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.metadata["papermill"]["status"] == "completed" for c in code)
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    return nb


def _outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if mime in o.get("data", {})]


def test_the_retrain_notebook_writes_a_promoted_run(project):
    d, _ = project
    run = d / "runs" / production_id(d / "runs")
    for name in ("metrics.json", "run.json", "retrain.ipynb", "artifacts/embeddings.npz"):
        assert (run / name).is_file(), name
    nb = nbformat.read(run / "retrain.ipynb", as_version=4)
    assert len(_outputs(nb, "image/png")) >= 3  # training curve, metrics comparison, onboarding curve at least


def test_the_cold_start_notebook_runs(project, tmp_path):
    d, _ = project
    nb = _run("cold_start.ipynb", tmp_path, runs_dir=str(d / "runs"), films=[1, 2, 3], ns=[0, 1, 3])
    assert _outputs(nb, "image/png")  # the onboarding curve


def test_the_compare_models_notebook_runs(project, tmp_path):
    d, _ = project
    nb = _run("compare_models.ipynb", tmp_path, runs_dir=str(d / "runs"), user_id=13)
    assert any("movement" in html for html in _outputs(nb, "text/html"))


def test_the_embeddings_notebook_runs(project, tmp_path):
    d, _ = project
    nb = _run("embeddings.ipynb", tmp_path, runs_dir=str(d / "runs"), item_id=1, category="category",
              vs="production")
    assert _outputs(nb, "image/png")  # the map


def test_the_explore_notebook_runs(project, tmp_path):
    _, config = project
    nb = _run("explore.ipynb", tmp_path, config=config, category="category")
    assert len(_outputs(nb, "image/png")) >= 4  # timeline, long tails, weights, categories


def test_every_notebook_is_run_here():
    tested = {"retrain.ipynb", "cold_start.ipynb", "compare_models.ipynb", "embeddings.ipynb", "explore.ipynb"}
    assert {p.name for p in NOTEBOOKS.glob("*.ipynb")} == tested


def test_a_probe_without_reference_can_be_drawn():
    """A probe without a majority-baseline reference (too few items per category, e.g. a generated log with 50
    categories) used to break the legend (TypeError), and the retrain notebook failed in its probe cell."""
    import polars as pl

    from recsys_lab.report import plots

    table = pl.DataFrame({"figure": ["probe.item.category.auc"], "value": [0.7], "reference": [None]},
                         schema={"figure": pl.Utf8, "value": pl.Float64, "reference": pl.Float64})
    plots.probe_bars(table).canvas.draw()
