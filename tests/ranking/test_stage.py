"""ranking.stage through Retrain.rank on generated data: keys only when enabled, learned on validation only."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.evaluation import keys
from recsys_lab.pipeline import Retrain
from recsys_lab.ranking.stage import run_stage
from recsys_lab.store.artifacts import load_run
from recsys_lab.store.folder import RunFolder

from ..conftest import generated_config

RANK = {"rank.candidates": {"model": 20, "ease": 20, "als": 10, "popularity": 5}, "rank.blend_step": 0.25,
        "rank.n_estimators": 20, "rank.early_stopping": 5, "rank.min_child_samples": 5, "rank.latency_users": 3}


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    cfg = generated_config(tmp_path_factory.mktemp("gen"), 150, 120, 4_000, seed=5, categories=6,
                           **{"eval.bootstrap": 100, "eval.baselines": ["popularity", "ease", "als"],
                              "eval.als_grid": [[8, 0.1, 10.0]], **RANK})
    j = Retrain(cfg)
    for step in (j.ingest, j.build_features, j.fit, j.evaluate):
        step()
    return j


def test_keys_appear_only_when_the_stage_runs(job):
    assert not any(key.startswith(("blend.", "ranker.", "rank.")) for key in job.metrics)
    metrics = job.rank()
    assert job.metrics == keys.flatten([job.recall, job.evaluation, job.ranking])
    ndcg = keys.at("ndcg", 10)
    for stage in ("blend", "ranker"):
        for key in (f"{stage}.{ndcg}", *keys.ci(f"{stage}.{ndcg}"), f"{stage}." + keys.vs("best_single", ndcg),
                    f"{stage}." + keys.vs("model", ndcg), f"{stage}." + keys.vs("ease", ndcg)):
            assert np.isfinite(metrics[key]), key
    assert 0 < metrics["rank.recall_ceiling"] <= 1 and metrics["ranker.latency_ms.p99"] > 0
    assert {g: metrics[f"rank.n.{g}"] for g in RANK["rank.candidates"]} == RANK["rank.candidates"]
    assert metrics["rank.n_items"] == job.split.train.shape[1]
    assert metrics["rank.recall_ceiling"] >= max(metrics[f"rank.recall_ceiling.{g}"] for g in ("model", "ease"))
    assert abs(sum(job.ranking.weights.values()) - 1) < 1e-9
    assert np.isfinite(metrics["ranker." + keys.vs("blend", ndcg)]) and "blend." + keys.vs("blend", ndcg) not in metrics
    best = job.ranking.best_single
    d = job.ranking.per_user["blend"][ndcg] - job.evaluation.per_user[best][ndcg]
    assert metrics["blend." + keys.vs("best_single", ndcg)] == pytest.approx(d.mean())


def test_run_all_runs_the_stage_only_when_enabled(tmp_path):
    base = {"eval.bootstrap": 100, "eval.baselines": ["popularity", "ease"], **RANK,
            "rank.candidates": {"model": 10, "ease": 10}, "rank.blend": ["model", "ease"], "rank.ranker": False}
    off = Retrain(generated_config(tmp_path / "a", 60, 50, 1_200, seed=1, categories=4, **base),
                  run_dir=tmp_path / "a" / "run")
    off.run_all()
    assert off.ranking is None and not any(k.startswith(("blend.", "rank.")) for k in off.metrics)
    assert not RunFolder(off.run_dir).blend.exists()
    on = Retrain(generated_config(tmp_path / "b", 60, 50, 1_200, seed=1, categories=4,
                                  **{**base, "rank.enabled": True, "rank.serve": "blend"}),
                 run_dir=tmp_path / "b" / "run")
    on.run_all()
    assert "blend.ndcg@10" in on.metrics and "rank.recall_ceiling" in on.metrics
    assert not any(k.startswith("ranker.") for k in on.metrics)  # rank.ranker = false: blend only
    assert "rank" in on.timings
    # rank.serve = "blend": the blend evaluated on the test users is saved, and the gate checks it against the model
    saved = load_run(on.run_dir).blend()
    assert saved.weights == on.ranking.weights and on.metrics["rank.serve_skipped"] == 0
    assert all(np.array_equal(a, b) for a, b in zip((saved.user_vecs, saved.item_vecs), on.ranking.served))
    floor = [c for c in on.gate.checks if c["metric"] == "blend.vs.model.ndcg@10.ci_low"]
    assert len(floor) == 1 and floor[0]["value"] == on.metrics["blend.vs.model.ndcg@10.ci_low"]
    assert not any(c["metric"].startswith("blend.") for c in off.gate.checks)


def test_a_blend_too_large_to_save_adds_no_blend_floor_to_the_gate(tmp_path, monkeypatch):
    """rank.serve = "blend" with the blend over MAX_SERVED_BYTES: the run serves the model, so its gate must not
    fail (or pass) on the blend against the model."""
    from recsys_lab.ranking import stage

    monkeypatch.setattr(stage, "MAX_SERVED_BYTES", 0)
    cfg = {"eval.bootstrap": 100, "eval.baselines": ["popularity", "ease"], **RANK, "rank.enabled": True,
           "rank.serve": "blend", "rank.candidates": {"model": 10, "ease": 10}, "rank.blend": ["model", "ease"],
           "rank.ranker": False}
    job = Retrain(generated_config(tmp_path, 60, 50, 1_200, seed=1, categories=4, **cfg), run_dir=tmp_path / "run")
    job.run_all()
    assert job.metrics["rank.serve_skipped"] == 1 and not RunFolder(job.run_dir).blend.exists()
    assert not any(c["metric"].startswith("blend.") for c in job.gate.checks), job.gate.checks


def test_a_test_only_signal_changes_nothing_the_stage_learns(job):
    """Test positives planted on ALS's top items: the blend weights and the ranker are chosen as before."""
    sp_ = job.split
    als_u, als_i = job.vectors["als"]
    scores = als_u @ als_i.T
    scores[sp_.train_seen.nonzero()] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :5]
    planted = sp.csr_matrix((np.ones(top.size, np.float32), (np.repeat(np.arange(len(top)), 5), top.ravel())),
                            shape=sp_.test.shape)
    cfg = job.config.replace({"rank.latency_users": 0})
    a = run_stage(sp_, job.dataset, job.fits, job.baseline_fits, job.vectors, job.evaluation, cfg)
    b = run_stage(dataclasses.replace(sp_, test=planted), job.dataset, job.fits, job.baseline_fits, job.vectors,
                  job.evaluation, cfg)
    assert a.weights == b.weights and a.grid == b.grid
    assert a.ranker.best_iteration == b.ranker.best_iteration and a.ranker.importance == b.ranker.importance
    # the planted signal is real: ALS is perfect on it
    assert b.metrics["rank.recall_ceiling.als"] == pytest.approx(1.0)


def test_without_a_validation_slice_the_stage_says_so_and_learns_nothing(tmp_path):
    cfg = generated_config(tmp_path, 60, 50, 1_200, seed=1, categories=4,
                           **{"eval.bootstrap": 100, "eval.baselines": ["popularity"], **RANK,
                              "rank.candidates": {"model": 10, "popularity": 5}, "rank.blend": ["model", "popularity"],
                              "split.validation_fraction": 0.0})
    j = Retrain(cfg)
    for step in (j.ingest, j.build_features, j.fit, j.evaluate, j.rank):
        step()
    assert "rank.recall_ceiling" in j.metrics and not any(k.startswith(("blend.", "ranker.")) for k in j.metrics)
    assert any("no validation user" in w for w in j.warnings)


@pytest.mark.slow  # executes the retrain notebook
def test_the_notebook_runs_the_stage_like_the_pipeline(tmp_path, monkeypatch):
    import json

    from recsys_lab.pipeline import run
    from recsys_lab.runs.execute import execute
    from recsys_lab.store.folder import RunFolder

    monkeypatch.chdir(tmp_path)
    cfg = generated_config(tmp_path, 60, 50, 1_200, seed=1, categories=4,
                           **{"eval.bootstrap": 100, "eval.baselines": ["popularity", "ease"], **RANK,
                              "rank.candidates": {"model": 10, "ease": 10}, "rank.blend": ["model", "ease"],
                              "rank.enabled": True, "rank.latency_users": 0, "gate.min": {}})
    result = execute(cfg, runs_dir="runs")
    assert result.status == "succeeded", result.reason
    saved = json.loads(RunFolder(result.run_dir).metrics.read_text())
    job = run(cfg)
    stage = {k: v for k, v in job.metrics.items() if k.startswith(("blend.", "ranker.", "rank."))
             and "seconds" not in k}
    assert stage and {k: saved[k] for k in stage} == pytest.approx(stage, nan_ok=True)
    # the report shows the recall ceiling table and the ranker's feature importance
    cells = {c.get("id"): c for c in json.loads(RunFolder(result.run_dir).notebook.read_text())["cells"]}
    table = "".join(o.get("data", {}).get("text/plain", "") if isinstance(o.get("data", {}).get("text/plain"), str)
                    else "".join(o.get("data", {}).get("text/plain", [])) for o in cells["a7c3e9d1"]["outputs"])
    assert "total" in table and "recall_ceiling" in table
    assert any("image/png" in o.get("data", {}) for o in cells["b8d4f0e2"]["outputs"])


def test_a_ranker_without_a_blend_still_ranks(job):
    cfg = job.config.replace({"rank.blend": [], "rank.latency_users": 0})
    r = run_stage(job.split, job.dataset, job.fits, job.baseline_fits, job.vectors, job.evaluation, cfg)
    assert r.weights == {} and "ranker.ndcg@10" in r.metrics and not any(k.startswith("blend.") for k in r.metrics)
    assert list(r.table()["stage"]) == ["ranker"]


def test_the_blend_is_kept_to_serve_only_with_serve_blend_and_only_when_small_enough(job, monkeypatch):
    from recsys_lab.evaluation.ranking import candidates as single_models
    from recsys_lab.ranking import stage
    from recsys_lab.ranking.blend import blend_vectors

    base = {"rank.ranker": False, "rank.latency_users": 0, "rank.enabled": True}
    model = run_stage(job.split, job.dataset, job.fits, job.baseline_fits, job.vectors, job.evaluation,
                      job.config.replace(base))
    assert model.served is None and "rank.serve_skipped" not in model.metrics
    cfg = job.config.replace({**base, "rank.serve": "blend"})
    blend = run_stage(job.split, job.dataset, job.fits, job.baseline_fits, job.vectors, job.evaluation, cfg)
    final = single_models(job.vectors, job.split.train, popularity=True)
    expected = blend_vectors(final, blend.weights)  # what the stage evaluated on the test users
    assert blend.metrics["rank.serve_skipped"] == 0 and blend.weights == model.weights
    assert all(np.array_equal(a, b) and a.dtype == np.float32 for a, b in zip(blend.served, expected))
    monkeypatch.setattr(stage, "MAX_SERVED_BYTES", sum(v.nbytes for v in expected) - 1)
    skipped = run_stage(job.split, job.dataset, job.fits, job.baseline_fits, job.vectors, job.evaluation, cfg)
    assert skipped.served is None and skipped.metrics["rank.serve_skipped"] == 1
    n, d = len(expected[0]) + len(expected[1]), expected[1].shape[1]
    assert any(f"users and {len(expected[1])} items x {d} dims), over the limit of {(n * d * 4 - 1) / 2**20:,.1f} MiB: "
               "not saved, the run serves the model" in note for note in skipped.notes), skipped.notes
    assert skipped.metrics["blend.ndcg@10"] == blend.metrics["blend.ndcg@10"]  # still evaluated
