"""Retrain.build_index: ann.method auto resolves by catalogue size, recall is measured on real users, and a
recall below ann.min_recall warns."""

import warnings

import pytest

from recsys_lab.retrieval.ann import AnnRecallWarning
from recsys_lab.config import AnnConfig
from recsys_lab.errors import ConfigError
from recsys_lab.pipeline import Retrain

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
    assert fitted.metrics["ann.recall@10"] == 1.0
    assert fitted.timings["index.exact"] == 1.0 and fitted.timings["index.numba_compile"] == 0.0
    assert fitted.timings["index.exact_queries_per_s"] > 0


def test_an_index_method_is_built_on_request_and_low_recall_warns(fitted, monkeypatch):
    # norm_range with a head covering the catalogue: exact answers, no numba compile
    fitted.config = fitted.config.replace({"ann.method": "norm_range", "ann.head_size": 400})
    index = fitted.build_index()
    assert index is not None and index.head_size == 400
    assert fitted.metrics["ann.recall@10"] == 1.0 and fitted.timings["index.exact"] == 0.0
    fitted.config = fitted.config.replace({"ann.min_recall": 1.0})
    monkeypatch.setattr("recsys_lab.evaluation.ranking.recall_overlap", lambda a, b: 0.5)
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
