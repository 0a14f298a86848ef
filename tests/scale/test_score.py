"""``scale.score``: every user's top-k on Ray Data equals the single-process exact top-k."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recsys_lab.errors import ConfigError, RunError
from recsys_lab.retrieval.topk import top_k
from recsys_lab.scale.score import score_users
from recsys_lab.store.artifacts import load_run

from .conftest import vector_run


def test_bad_k_and_missing_run_fail_before_ray(tmp_path):
    with pytest.raises(ConfigError):
        score_users(tmp_path, tmp_path / "o.parquet", k=0)
    with pytest.raises(RunError):
        score_users(tmp_path / "nope", tmp_path / "o.parquet")


@pytest.mark.slow
def test_score_equals_exact_top_k(tmp_path, local_ray):
    path = vector_run(tmp_path, users=3000, items=500)
    result = score_users(path, tmp_path / "topk.parquet", k=20, workers=2, batch_size=400)
    out = pl.read_parquet(result.path).sort("user_id")
    assert result.rows == out.height == 3000
    run = load_run(path)
    assert out["user_id"].to_list() == list(run.user_ids)
    items, scores = top_k(run.user_vecs, run.item_vecs, 20, exclude=run.split().seen)
    got_items = np.array(out["item_id"].to_list())
    np.testing.assert_allclose(np.array(out["score"].to_list()), scores, rtol=1e-5)
    assert (got_items == run.item_ids[items]).mean() > 0.999  # exact up to ties
    seen = run.split().seen
    for u in range(0, 3000, 97):  # training items are never recommended
        assert not set(seen[u].indices) & set(run.items.to_index(got_items[u]))
