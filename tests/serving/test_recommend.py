"""serving.recommend on a small saved run: each serving path (model, fold-in, popularity) answers whom it should,
with seen items excluded; two runs side by side."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_lab import serving
from recsys_lab.models import foldin
from recsys_lab.serving.saved_run import served_run

from ..store._runs import write_run


def test_a_trained_user_gets_the_runs_vector_without_their_training_items(saved):
    runs_dir, _ = saved
    m = served_run(runs_dir, "production")
    recs = serving.recommend(runs_dir, 1, run="production", k=3)
    seen = m.seen[0].indices
    expected, _ = foldin.top_k_one(m.user_vecs[0], m.item_vecs, 3, exclude=seen)
    assert set(recs["path"]) == {"model"} and recs["item_id"].to_list() == m.item_ids[expected].tolist()
    assert not set(m.item_ids[seen]) & set(recs["item_id"]) and recs["score"].is_sorted(descending=True)
    assert recs["title"].null_count() == 0


def test_a_cold_user_is_folded_in_from_the_snapshot_and_an_unknown_user_gets_popularity(saved):
    runs_dir, _ = saved
    m = served_run(runs_dir, "production")
    cold = serving.recommend(runs_dir, 8, run="production", k=3)  # positives only after the cut-off
    expected, _ = foldin.top_k_one(m.foldin().user(m.items.to_index([1, 2])), m.item_vecs, 3,
                                   exclude=m.items.to_index([1, 2]))
    assert set(cold["path"]) == {"fold-in"} and cold["item_id"].to_list() == m.item_ids[expected].tolist()
    with pytest.warns(serving.ColdStartWarning, match="unknown user_id 999"):
        pop = serving.recommend(runs_dir, 999, run="production", k=3)
    assert set(pop["path"]) == {"popularity"}
    assert pop["score"].to_list() == sorted(m.popularity().tolist(), reverse=True)[:3]


def test_onboarding_from_items_names_unknown_ids(saved):
    runs_dir, _ = saved
    with pytest.warns(serving.ColdStartWarning, match="unknown item_id.*99, abc"):
        recs = serving.recommend_for_items(runs_dir, [" 1", 99, "abc"], k=3)
    assert set(recs["path"]) == {"fold-in"} and 1 not in set(recs["item_id"])
    with pytest.warns(serving.ColdStartWarning, match="no known item to fold in"):
        assert set(serving.recommend_for_items(runs_dir, [99], k=3)["path"]) == {"popularity"}


def test_history_and_two_runs_side_by_side(saved, tmp_path):
    runs_dir, folder = saved
    history = serving.user_history(runs_dir, 1, run="production")
    m = served_run(runs_dir, "production")
    assert sorted(history["item_id"].to_list()) == sorted(m.item_ids[m.seen[0].indices].tolist())
    same = serving.compare_recommendations(runs_dir, 1, run="production", vs=folder.run_id, k=3)
    assert same["movement"].to_list() == ["="] * 3 and same["rank_a"].to_list() == same["rank_b"].to_list()
    assert np.allclose(same["score_a"].to_numpy(), same["score_b"].to_numpy())


def test_a_second_run_on_the_same_data_is_served_from_its_own_folder(saved, tmp_path):
    other = write_run(tmp_path / "runs", tmp_path / "wh", run_id="20200102T000000Z-bbbbbb", production=False)
    a = served_run(tmp_path / "runs", other.run_id)
    assert a.path == other.path and a is not served_run(saved[0], "production")
