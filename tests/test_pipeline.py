"""Retrain.build_index: ann.method auto resolves by catalogue size, recall is measured on real users, and a
recall below ann.min_recall warns."""

import warnings

import numpy as np
import pytest

from recsys_lab.config import AnnConfig
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.pipeline import Retrain
from recsys_lab.retrieval.ann import AnnRecallWarning

from .conftest import generated_config


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    job = Retrain(generated_config(tmp_path_factory.mktemp("gen"), 300, 400, 6_000, seed=2))
    job.ingest()
    job.build_features()
    job.fit()
    return job


def test_auto_is_exact_below_the_crossover(fitted):
    with warnings.catch_warnings():
        warnings.simplefilter("error", AnnRecallWarning)
        assert fitted.build_index() is None
    # no index, no recall claim (exact vs exact was once reported and gated as ann.recall@10 = 1.0)
    assert fitted.metrics["ann.exact"] == 1 and "ann.recall@10" not in fitted.metrics
    assert fitted.timings["index.exact"] == 1.0 and fitted.timings["index.numba_compile"] == 0.0
    assert fitted.timings["index.exact_queries_per_s"] > 0


def test_an_index_method_is_built_on_request_and_low_recall_warns(fitted, monkeypatch):
    # norm_range with a head covering the catalogue: exact answers, no numba compile. The module's job is shared:
    # its config is changed through monkeypatch, so the next test sees the original
    monkeypatch.setattr(fitted, "config", fitted.config.replace({"ann.method": "norm_range", "ann.head_size": 400}))
    index = fitted.build_index()
    assert index is not None and index.head_size == 400
    assert fitted.metrics["ann.recall@10"] == 1.0 and fitted.timings["index.exact"] == 0.0
    monkeypatch.setattr(fitted, "config", fitted.config.replace({"ann.min_recall": 1.0}))
    monkeypatch.setattr("recsys_lab.retrieval.recall.recall_overlap", lambda a, b: 0.5)
    with pytest.warns(AnnRecallWarning, match=r"ann.recall@10 0.5000 is below ann.min_recall 1.0"):
        fitted.build_index()


def test_ann_config():
    assert AnnConfig().resolved_method(1_682) == "exact"
    assert AnnConfig().resolved_method(100_000) == "hnsw"
    assert AnnConfig(method="norm_range").resolved_method(10) == "norm_range"
    with pytest.raises(ConfigError, match="ann.method"):
        AnnConfig(method="ivf")
    with pytest.raises(ConfigError, match="ann.target_recall"):
        AnnConfig(target_recall=float("nan"))
    with pytest.raises(ConfigError, match="ann.min_recall"):
        AnnConfig(min_recall=1.5)


def test_a_step_before_its_input_names_the_missing_step(tmp_path):
    job = Retrain(generated_config(tmp_path, 50, 40, 600, seed=1))
    with pytest.raises(RunError, match=r"call evaluate\(\) before this step"):
        job.check_gate()
    with pytest.raises(RunError, match=r"call ingest\(\) before this step"):
        job.build_features()


def test_metrics_are_the_results_of_the_steps_flattened_in_order(tmp_path):
    from recsys_lab.evaluation import keys

    cfg = generated_config(tmp_path, 120, 90, 2_500, seed=3, **{"eval.bootstrap": 100, "eval.baselines": ["popularity"]})
    job = Retrain(cfg, run_dir=tmp_path / "run")
    job.ingest()
    job.build_features()
    job.fit()
    job.build_index()
    job.evaluate()
    job.evaluate_cold_start()
    job.evaluate_embeddings()
    job.save()
    assert job.metrics == keys.flatten([job.recall, job.evaluation, job.cold_start, job.embeddings])
    assert list(job.metrics)[:2] == ["ann.exact", "precision@10"]
    assert not any(key.endswith((".lo", ".hi")) for key in job.metrics)  # interval keys are .ci_low / .ci_high
    assert job.onboarding is job.cold_start.onboarding and job.eval_users is job.evaluation.users
    # champion/challenger against this very run: production re-scored on the same split is the candidate
    gate = job.check_gate(tmp_path / "run")
    assert job.metrics["vs.production.ndcg@10"] == 0.0 and job.metrics["production.known_items"] == 90
    assert gate.passed and set(job.per_user) == {"model", "popularity", "production"}
    np.testing.assert_array_equal(job.per_user["production"]["ndcg@10"], job.per_user["model"]["ndcg@10"])
    assert job.per_user_table().height == 3 * len(job.eval_users)
    # an unreadable production fails every regression check closed, naming the file; no production says so
    gate = job.check_gate(tmp_path / "gone")
    assert not gate.passed and job.champion is None and "production" not in job.per_user
    assert "gone" in " ".join(c["message"] for c in gate.checks if c["kind"] == "regression")
    assert job.check_gate(None).passed and "vs.production.ndcg@10" not in job.metrics
