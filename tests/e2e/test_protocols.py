"""Decision-grade evaluation end to end: logs without timestamps, bad timestamps, intervals, the paired gate
against a re-scored production run, and eval.k of any value."""

import json
import shutil

import numpy as np
import polars as pl
import pytest

from recsys_lab import pipeline
from recsys_lab.errors import ConfigError

from ..conftest import cli, generated_config


@pytest.fixture(scope="module")
def counts_project(tmp_path_factory):
    """Aggregated play counts (user, item, count), no time column: 300 users who prefer one of 4 genres."""
    d = tmp_path_factory.mktemp("counts")
    rng = np.random.default_rng(0)
    n = 12_000
    user = rng.integers(0, 300, n)
    item = np.where(rng.random(n) < 0.8, (rng.zipf(1.3, n) % 50) * 4 + (user % 4), rng.integers(0, 200, n))
    df = pl.DataFrame({"user": user, "item": item, "count": rng.poisson(3, n) + 1})
    df.group_by("user", "item").agg(pl.col("count").sum()).sort("user", "item").write_csv(d / "counts.csv")
    (d / "counts.toml").write_text("""
[data]
source = "files"
interactions = "counts.csv"
user_col = "user"
item_col = "item"
weight_col = "count"
weight_transform = "log1p"

[model]
num_threads = 1
epochs = 10
""")
    return d


@pytest.mark.slow
def test_a_count_log_without_time_goes_through_ingest_and_retrain(counts_project):
    ing = cli("ingest", "-c", "counts.toml", cwd=counts_project)
    assert ing.returncode == 0, ing.stderr
    proc = cli("retrain", "-c", "counts.toml", cwd=counts_project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "random split" in proc.stdout and "no timestamps" in proc.stdout
    (run,) = [p for p in (counts_project / "runs").iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    assert m["ndcg@10.ci_low"] <= m["ndcg@10"] <= m["ndcg@10.ci_high"]
    assert m["ndcg@10"] > m["baseline.popularity.ndcg@10"]
    assert "baseline.ease.ndcg@10" in m and "baseline.als.ndcg@10" in m
    assert json.loads((run / "data.json").read_text())["split"]["method"] == "random"
    per_user = pl.read_parquet(run / "artifacts" / "per_user_metrics.parquet")
    assert set(per_user["model"]) == {"model", "popularity", "lightfm_cf", "ease", "als"}
    assert per_user.filter(pl.col("model") == "model").height == m["eval.n_users"]


def test_millisecond_timestamps_read_as_seconds_suggest_ms(tmp_path):
    pl.DataFrame({"user_id": [1, 2], "item_id": [1, 2], "ts": [1_600_000_000_000, 1_600_000_100_000]}).write_csv(
        tmp_path / "log.csv")
    proc = cli("ingest", "--interactions", "log.csv", cwd=tmp_path)
    assert proc.returncode == 1
    assert 'time_unit = "ms"' in proc.stderr and "log.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_guardrail_failures_are_all_named_on_one_line(tmp_path):
    pl.DataFrame({"user_id": [1, 1, None], "item_id": [1, 1, 2], "ts": [1_600_000_000] * 3}).write_csv(
        tmp_path / "log.csv")
    proc = cli("ingest", "--interactions", "log.csv", cwd=tmp_path)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert "null_keys (1 " in line and "duplicates (1 " in line and "check(s)" not in line


@pytest.fixture(scope="module")
def production_run(ml100k_source, tmp_path_factory):
    """A small in-process retrain on ML-100k saved as a run folder (stands in for production)."""
    d = tmp_path_factory.mktemp("prod")
    cfg = {"data": {"path": str(ml100k_source), "warehouse": str(d / "warehouse")},
           "model": {"num_threads": 1, "epochs": 5, "no_components": 32}, "eval": {"baselines": ["popularity"]}}
    job = pipeline.run(cfg, run_dir=d / "run")
    return cfg, job, d / "run"


@pytest.mark.slow
def test_gate_re_scores_production_on_the_candidate_split_and_fails_closed(production_run, tmp_path):
    cfg, prod_job, prod_dir = production_run
    m = prod_job.metrics
    assert m["eval.n_users"] >= 500 and m["ndcg@10.ci_low"] < m["ndcg@10"] < m["ndcg@10.ci_high"]
    job = pipeline.Retrain({**cfg, "eval": {"k": 20, "baselines": ["popularity"]}, "gate": {"min": {"ndcg@k": 0.05}}})
    job.ingest()
    job.build_features()
    job.fit()
    job.evaluate()
    g = job.check_gate(prod_dir)
    assert g.passed, g.reason
    regression = [c for c in g.checks if c["kind"] == "regression"]
    assert {c["metric"] for c in regression} == {"ndcg@20", "recall@20"}
    assert "re-scored on this split" in regression[0]["message"]
    # every evaluation user is known to production (same data): none took the cold-start path
    assert job.metrics["production.known_users"] == job.metrics["eval.n_users"]
    copy = tmp_path / "prod"
    shutil.copytree(prod_dir, copy)
    (copy / "metrics.json").unlink()
    g = job.check_gate(copy)
    assert not g.passed and str(copy / "metrics.json") in g.reason
    (copy / "metrics.json").write_text("{not json")
    assert not job.check_gate(copy).passed
    assert [c["message"] for c in job.check_gate(None).checks if c["kind"] == "regression"] == [
        "ndcg@20: skipped: no production run", "recall@20: skipped: no production run"]


def test_eval_k_larger_than_the_catalogue_is_a_config_error(tmp_path):
    """Raised by build_features, before any fit: a generated log of 30 items shows it (this test used to train a
    model on ML-100k first, in the fast tier)."""
    job = pipeline.Retrain(generated_config(tmp_path, 60, 30, 900, seed=1, **{"eval.k": 31}))
    job.ingest()
    with pytest.raises(ConfigError, match="eval.k: must be at most the catalogue size"):
        job.build_features()


def test_nothing_to_evaluate_is_a_data_error(tmp_path):
    """One interaction per user: nobody has both a training and a test positive; the run must fail, not
    succeed with null metrics."""
    from recsys_lab.errors import DataError

    pl.DataFrame({"user_id": range(50), "item_id": [i % 25 for i in range(50)]}).write_csv(tmp_path / "log.csv")
    cfg = {"data": {"source": "files", "interactions": str(tmp_path / "log.csv"), "warehouse": str(tmp_path / "wh")}}
    job = pipeline.Retrain(cfg)
    job.ingest()
    with pytest.raises(DataError, match="nothing to evaluate"):
        job.build_features()


@pytest.mark.slow
def test_gate_noise_study_counts_failing_pairs(counts_project, tmp_path):
    from recsys_lab.config import load_config
    from recsys_lab.tools.study import gate_noise

    cfg = load_config(counts_project / "counts.toml", {"data.interactions": str(counts_project / "counts.csv"),
                                                        "data.warehouse": str(tmp_path / "wh"), "model.epochs": 3,
                                                        "eval.bootstrap": 200})
    lines = []
    (row,) = gate_noise(cfg, runs=2, methods=("random",), echo=lines.append)
    assert row["pairs"] == 2 and 0 <= row["paired_rule"] <= row["old_rule"] <= 1
    assert "paired rule" in lines[0] and row["users"] > 100


@pytest.mark.slow
def test_users_production_never_saw_take_its_fold_in_path(production_run, tmp_path):
    """Production trained without half of today's users: they are scored through production's fold-in, the gate
    still compares every evaluation user (paired), and unknown ids never crash it."""
    import numpy as np
    import scipy.sparse as sp

    cfg, prod_job, prod_dir = production_run
    copy = tmp_path / "prod"
    shutil.copytree(prod_dir, copy)
    ids, emb = dict(np.load(copy / "artifacts" / "id_maps.npz")), dict(np.load(copy / "artifacts" / "embeddings.npz"))
    keep = np.arange(0, len(ids["user_ids"]), 2)
    np.savez(copy / "artifacts" / "id_maps.npz", user_ids=ids["user_ids"][keep], item_ids=ids["item_ids"])
    np.savez(copy / "artifacts" / "embeddings.npz", user_vecs=emb["user_vecs"][keep], item_vecs=emb["item_vecs"])
    split = dict(np.load(copy / "artifacts" / "split.npz"))  # production's own split covers its own users only
    rows = {}
    for part in ("seen", "pos"):
        m = sp.csr_matrix((np.ones(len(split[f"{part}_indices"]), np.float32), split[f"{part}_indices"],
                           split[f"{part}_indptr"]), shape=(len(ids["user_ids"]), len(ids["item_ids"])))[keep]
        rows.update({f"{part}_indptr": m.indptr, f"{part}_indices": m.indices})
    np.savez(copy / "artifacts" / "split.npz", **rows)
    g = prod_job.check_gate(copy)
    m = prod_job.metrics
    assert 0 < m["production.known_users"] < m["eval.n_users"]
    assert all(np.isfinite(prod_job.per_user["production"]["ndcg@10"]))
    assert [c for c in g.checks if c["kind"] == "regression"][0]["message"].count(f"({m['eval.n_users']} users)")
