"""Fairness: item exposure and user-group accuracy on hand-computed cases, group labels from tables."""

import numpy as np
import polars as pl
import pytest

from recsys_lab.evaluation import beyond, fairness

POP = np.array([8.0, 4.0, 2.0, 1.0])


def test_group_exposure_against_catalogue_and_interactions():
    groups, names = beyond.membership(["x", "x", "y", "y"])
    out = fairness.group_exposure(np.array([[0, 1], [0, 2]]), groups, names, interactions=POP)
    # slots: x 3 of 4, y 1 of 4; catalogue 1/2 each; interactions x 12/15, y 3/15
    assert out["x"]["exposure"] == pytest.approx(0.75)
    assert out["y"]["catalog"] == pytest.approx(0.5)
    assert out["x"]["interactions"] == pytest.approx(0.8)
    assert out["y"]["ratio"] == pytest.approx(0.25 / 0.2)


def test_group_ndcg_means_intervals_and_gap():
    values = np.array([0.2, 0.4, 0.6, 0.6, np.nan])
    groups = np.array(["F", "F", "M", "M", "M"], dtype=object)
    per, gap = fairness.group_ndcg(values, groups, n_resamples=200)
    assert per["F"]["mean"] == pytest.approx(0.3) and per["F"]["n_users"] == 2
    assert per["M"]["n_users"] == 2 and per["M"]["ci_low"] == per["M"]["ci_high"] == pytest.approx(0.6)
    assert per["F"]["ci_low"] <= 0.3 <= per["F"]["ci_high"]
    assert gap == pytest.approx(0.3)


def test_item_categories_in_index_order_and_missing_column():
    items = pl.DataFrame({"item_id": [30, 10, 20], "genre": [["a"], ["a", "b"], None]})
    order = {10: 0, 20: 1, 30: 2}
    cats, names = fairness.item_categories(items, "genre", order.__getitem__, 3)
    assert names == ["a", "b"]
    np.testing.assert_array_equal(cats, [[True, True], [False, False], [True, False]])
    assert fairness.item_categories(items, "colour", order.__getitem__, 3) == (None, [])


def test_user_labels_bucket_numeric_columns_and_keep_text():
    users = pl.DataFrame({"user_id": np.arange(20), "age": np.arange(20) + 10, "sex": ["F", "M"] * 10})
    ages = fairness.user_labels(users, "age", lambda ids: np.asarray(ids), 21)
    assert ages[0] == "10-13.8" and ages[19].endswith("-29") and ages[20] is None  # quantile buckets; unknown user
    assert list(fairness.user_labels(users, "sex", lambda ids: np.asarray(ids), 20)[:2]) == ["F", "M"]
    assert fairness.user_labels(users, "user_id", lambda ids: ids, 20) is None


def test_fairness_figures_keys_and_values():
    groups, names = beyond.membership(["x", "x", "y", "y"])
    lists = np.array([[0, 1], [0, 2]])
    labels = np.array(["F", "M"], dtype=object)
    details = {}
    out = fairness.fairness_figures(lists, np.array([0.5, 1.0]), k=2, categories=groups, category_names=names,
                                    category_column="genre", interactions=POP, user_groups={"sex": labels, "age": None},
                                    n_resamples=50, details=details)
    shares = fairness.group_exposure(lists, groups, names, interactions=POP)
    assert out["fairness.item.genre.exposure_gap"] == pytest.approx(max(abs(v["exposure"] - v["interactions"])
                                                                        for v in shares.values()))
    assert out["fairness.item.genre.x.exposure"] == pytest.approx(0.75) and details["item_exposure"] == shares
    assert out["fairness.user.sex.ndcg@2.F"] == 0.5 and out["fairness.user.sex.ndcg@2.M.n_users"] == 1
    assert "fairness.user.sex.ndcg@2.F.ci_low" in out and not any(".age." in key for key in out)
    # without details (a baseline) the per-group item shares are not repeated
    assert not any(key.startswith("fairness.item.genre.x.") for key in
                   fairness.fairness_figures(lists, np.array([0.5, 1.0]), k=2, categories=groups,
                                             category_names=names, category_column="genre", interactions=POP))
