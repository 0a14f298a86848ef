"""Serving a run that saved the ranking stage's blend (``artifacts/blend.npz``, ``rank.serve = "blend"``): known
users get the exact top-k of the blend's vectors, every other user keeps their path; a damaged file is named."""

from __future__ import annotations

import json
import shutil

import numpy as np
import polars as pl
import pytest

from recsys_lab import serving
from recsys_lab.errors import RunError
from recsys_lab.serving.saved_run import served_run
from recsys_lab.store.artifacts import load_run, write_arrays
from recsys_lab.store.folder import RunFolder


@pytest.fixture()
def runs(saved, tmp_path):
    """A copy of the saved run with a blend of 7 dimensions (random, so every user's scores are distinct)."""
    runs_dir, folder = saved
    shutil.copytree(runs_dir, tmp_path / "runs")
    copy = RunFolder(tmp_path / "runs" / folder.run_id)
    rng = np.random.default_rng(3)
    run = load_run(copy)
    write_arrays(copy.blend, user_vecs=rng.normal(size=(len(run.users), 7)).astype(np.float32),
                 item_vecs=rng.normal(size=(len(run.items), 7)).astype(np.float32),
                 weights=np.array(json.dumps({"model": 0.4, "ease": 0.6})))
    return tmp_path / "runs", copy


def test_a_known_user_gets_the_exact_top_k_of_the_blend_without_seen_items(runs):
    runs_dir, folder = runs
    m = served_run(runs_dir, "production")
    blend = m.blend()
    assert blend.weights == {"model": 0.4, "ease": 0.6} and blend.user_vecs.dtype == np.float32
    for user in range(1, 8):  # users 1..7 have training positives
        row = m.users.to_index([user])[0]
        scores = blend.user_vecs[row] @ blend.item_vecs.T
        scores[m.seen[row].indices] = -np.inf
        k = len(m.item_ids) - m.seen[row].nnz  # every item left, so the whole order is checked
        expected = m.item_ids[np.argsort(-scores, kind="stable")[:k]]
        recs = serving.recommend(runs_dir, user, run="production", k=k)
        assert set(recs["path"]) == {"blend"} and recs["item_id"].to_list() == expected.tolist(), user
        assert recs["score"].to_numpy() == pytest.approx(np.sort(scores)[::-1][:k], rel=1e-5)


def test_new_and_updated_users_keep_their_paths(runs, tmp_path):
    runs_dir, _ = runs
    assert set(serving.recommend(runs_dir, 8, run="production", k=3)["path"]) == {"fold-in"}  # cold
    with pytest.warns(serving.ColdStartWarning):
        assert set(serving.recommend(runs_dir, 999, run="production", k=3)["path"]) == {"popularity"}
    csv = tmp_path / "new.csv"
    pl.DataFrame([(1, 6, 5, 1_600_000_000)], schema=["user_id", "item_id", "rating", "timestamp"],
                 orient="row").write_csv(csv)
    serving.update(runs_dir, csv)
    assert set(serving.recommend(runs_dir, 1, run="production", k=2)["path"]) == {"update"}
    assert set(serving.recommend(runs_dir, 2, run="production", k=3)["path"]) == {"blend"}


def test_a_run_without_a_blend_serves_the_model(saved):
    runs_dir, folder = saved
    assert not folder.blend.exists()
    m = served_run(runs_dir, "production")
    assert m.blend() is None and set(serving.recommend(runs_dir, 1, run="production", k=3)["path"]) == {"model"}


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "bad weights"])
def test_a_damaged_blend_is_one_typed_error_naming_the_file(runs, damage):
    runs_dir, folder = runs
    z = dict(np.load(folder.blend))
    if damage == "truncated":
        folder.blend.write_bytes(folder.blend.read_bytes()[:60])
        message = "cannot read \\("
    elif damage == "wrong shape":
        write_arrays(folder.blend, **{**z, "item_vecs": z["item_vecs"][:3]})
        message = "cannot read \\(item_vecs has shape \\(3, 7\\), id_maps.npz has 6 items\\)"
    else:
        write_arrays(folder.blend, **{**z, "weights": np.array("{not json")})
        message = "cannot read \\(JSONDecodeError"
    with pytest.raises(RunError, match=f"^{folder.blend}: {message}"):
        serving.recommend(runs_dir, 1, run="production", k=3)
