"""Embeddings as a product on a real retrain: metrics keys, similar items, personas, the embeddings notebook."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from recsys_lab import serving

from ..conftest import cli

pytestmark = [pytest.mark.slow]  # realdata: set from the fixtures (tests/conftest.py)


def test_retrain_writes_beyond_accuracy_fairness_and_embedding_keys(first_run):
    proc, run = first_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    m = json.loads((run / "metrics.json").read_text())
    for key in ("novelty@10", "ild@10", "ild.category@10", "arp@10", "aplt@10", "gini@10", "coverage@10",
                "baseline.popularity.novelty@10", "baseline.ease.arp@10", "fairness.user.gender.ndcg@10.gap",
                "fairness.user.gender.ndcg@10.F.ci_low", "fairness.item.genre.Drama.exposure",
                "embedding.item_coherence@10", "embedding.item_coherence@10.chance", "probe.item.genre.auc",
                "probe.user.gender.auc", "probe.user.gender.auc.baseline", "probe.user.occupation.auc"):
        assert key in m, key
    # most-popular is the least novel and least covering list; the model is more novel
    assert m["baseline.popularity.novelty@10"] < m["novelty@10"]
    assert m["baseline.popularity.coverage@10"] < m["coverage@10"]
    assert m["embedding.item_coherence@10"] > m["embedding.item_coherence@10.chance"]
    assert m["probe.user.gender.auc"] > 0.55  # taste says something about gender on ML-100k
    personas = json.loads((run / "personas.json").read_text())
    assert len(personas["horror-fan"]["top"]) == 10
    html = (run / "report.html").read_text()
    assert "Embeddings as a product" in html and "Personas" in html


def test_similar_prints_ten_titled_neighbours(first_run, workdir):
    proc = cli("similar", "--item", "50", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "most similar to item 50" in proc.stdout and proc.stdout.count("(19") >= 10  # titled
    df = serving.similar(workdir / "runs", 50, k=10)
    assert df.height == 10 and 50 not in df["item_id"].to_list() and df["title"].null_count() == 0
    assert df["score"].is_sorted(descending=True)


def test_similar_unknown_item_is_named(first_run, workdir):
    proc = cli("similar", "--item", "999999", cwd=workdir)
    assert proc.returncode == 2 and "unknown item_id '999999'" in proc.stderr


def test_personas_against_production(first_run, workdir):
    proc = cli("personas", "--run", "latest", "--vs", "production", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    for name in ("horror-fan", "parent-kids", "heavy-drama", "film-noir-only", "new-user-3-picks"):
        assert name in proc.stdout
    # the same run: nothing moved ("=" alone could not fail: the output has "=" elsewhere)
    assert "move" in proc.stdout and "=" in proc.stdout
    assert not re.search(r"\b(up|down) \d+\b|\bdropped\b", proc.stdout), proc.stdout


def test_embeddings_notebook_runs_on_real_data(first_run, workdir, tmp_path):
    import papermill as pm

    from recsys_lab.report.html import export_html

    out = tmp_path / "embeddings.ipynb"
    src = Path(__file__).resolve().parents[2] / "notebooks" / "embeddings.ipynb"
    pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                        parameters={"runs_dir": str(workdir / "runs"), "vs": "production"})
    html = export_html(out, tmp_path / "embeddings.html").read_text()
    assert html.count("data:image/png") >= 2  # the map and the probes
    assert "Empire Strikes Back" in html  # a neighbour of Star Wars / a persona pick
    nb = nbformat.read(out, as_version=4)  # every cell ran, none raised (reading the cells could not fail)
    assert all(c.metadata["papermill"]["status"] == "completed" for c in nb.cells if c.cell_type == "code")
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_identical_retrain_is_perfectly_stable_against_production(first_run):
    """Same snapshot, config and seed on one thread: the item neighbourhoods and top-k lists do not move."""
    from recsys_lab.config import Config
    from recsys_lab.pipeline import Retrain

    _, run = first_run
    job = Retrain(Config.from_dict(json.loads((run / "params.json").read_text())))
    job.ingest()
    job.build_features()
    job.fit()
    job.evaluate()
    out = job.evaluate_embeddings(production=run)
    assert out["embedding.stability@10"] == pytest.approx(1.0)
    assert out["recs.churn@10"] == pytest.approx(0.0)
    assert out["recs.shared_users"] == job.metrics["eval.n_users"]
    job.evaluate_personas(production=run)
    assert job.personas == job.production_personas


@pytest.mark.slow
@pytest.mark.parametrize("method", ["time_per_user", "time_global"])
def test_log_without_item_or_user_table_skips_with_notes(tmp_path, method):
    """Defaults work on a bare interaction log: beyond accuracy is measured, what needs tables is skipped with a
    note, and personas whose ids the log does not know get empty lists."""
    import numpy as np
    import polars as pl

    from recsys_lab.pipeline import Retrain

    rng = np.random.default_rng(0)
    n = 6000
    user = rng.integers(0, 200, n)
    item = (rng.zipf(1.4, n) % 60 + (user % 3) * 60) % 180
    pl.DataFrame({"u": user, "i": item, "w": np.ones(n), "t": np.sort(rng.integers(1_600_000_000, 1_630_000_000, n))}
                 ).unique(["u", "i"]).write_csv(tmp_path / "log.csv")
    job = Retrain({"data": {"source": "files", "interactions": str(tmp_path / "log.csv"), "user_col": "u",
                            "item_col": "i", "weight_col": "w", "time_col": "t", "positive_threshold": 1.0,
                            "warehouse": str(tmp_path / "wh")},
                   "model": {"epochs": 5, "num_threads": 1}, "split": {"method": method},
                   "eval": {"baselines": ["popularity"], "bootstrap": 200, "horizon_days": 30}})
    job.ingest()
    job.build_features()
    job.fit()
    job.evaluate()
    out = job.evaluate_embeddings()
    assert out["novelty@10"] > out["baseline.popularity.novelty@10"]
    assert "embedding.item_coherence@10" not in out and not any(k.startswith("probe.") for k in out)
    notes = " ".join(job.embedding_report["notes"])
    assert "no item column 'genre'" in notes and "no user column 'gender'" in notes
    if method == "time_global":  # the future window: test positives in the first 30 days after the cut-off
        assert out["horizon.n_users"] > 0 and 0 <= out["horizon.ndcg@10"] <= 1
        assert out["horizon.ndcg@10.ci_low"] <= out["horizon.ndcg@10"] <= out["horizon.ndcg@10.ci_high"]
        assert "baseline.popularity.horizon.ndcg@10" in out
    else:
        assert "future-window task skipped" in notes and "horizon.n_users" not in out
    lists = job.evaluate_personas()
    assert all(entry["top"] == [] or entry["items"] for entry in lists.values())
