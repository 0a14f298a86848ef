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


def _rewrite(path, out, user_row, items=None, scores=None):
    """Copy the top-k file ``path`` to ``out`` with one row's lists replaced."""
    df = pl.read_parquet(path)
    item_lists, score_lists = df["item_id"].to_list(), df["score"].to_list()
    if items is not None:
        item_lists[user_row] = items
    if scores is not None:
        score_lists[user_row] = scores
    df.with_columns(pl.Series("item_id", item_lists), pl.Series("score", score_lists, dtype=pl.List(pl.Float32))
                    ).write_parquet(out)
    return out


def test_verify_sample_counts_identical_tied_and_wrong_lists(tmp_path):
    """The local scorer's file verifies 1.0; a list with two tied items swapped is equal but not identical; a list
    with a worse item, a file missing a user and a training item at a finite score are not equal."""
    from recsys_lab.scale.score import score_local, verify_sample
    from recsys_lab.store.artifacts import write_arrays
    from recsys_lab.store.folder import RunFolder

    path = vector_run(tmp_path, users=300, items=4000, seen_per_user=20)  # >= 2,048 items: the threshold path
    run = load_run(path)
    vecs = run.item_vecs.copy()
    vecs[0:4] = 3 * run.user_vecs[0]  # items 0..3 tie for every user, at the top of user 0's list
    write_arrays(RunFolder(path).embeddings, user_vecs=run.user_vecs, item_vecs=vecs)
    run = load_run(path)
    result = score_local(path, tmp_path / "topk.parquet", k=10, batch_size=128)
    assert result.rows == 300
    v = verify_sample(path, result.path, 100, seed=1)
    assert (v.users, v.equal, v.missing, v.rows, v.k) == (100, 100, 0, 300, 10)
    # which of the tied items straddling a 10th place is kept depends on the block the user was scored in: a
    # user may differ in ids (here 1 of 100), never in scores
    assert v.identical >= 98 and v.share_equal == 1.0 and v.max_score_diff == 0.0

    df = pl.read_parquet(result.path)
    items = np.array(df["item_id"].to_list())
    inner = run.items.to_index(items)
    # a user whose list holds two of the tied items next to each other: swap them
    tied = [r for r in range(300) if len(set(inner[r]) & {0, 1, 2, 3}) >= 2]
    assert tied, "the planted tie reaches no top-10"
    r = tied[0]
    row = list(items[r])
    a, b = [j for j in range(10) if inner[r, j] in (0, 1, 2, 3)][:2]
    row[a], row[b] = row[b], row[a]
    swapped = _rewrite(result.path, tmp_path / "swapped.parquet", r, items=row)
    base = verify_sample(path, result.path, 300).identical
    v = verify_sample(path, swapped, 300)
    assert (v.identical, v.equal) == (base - 1, 300)

    # the 10th item replaced by the best item outside the list: its score is not the exact 10th score
    full = run.user_vecs[r] @ run.item_vecs.T
    seen = set(run.split().seen[r].indices)
    outside = [j for j in np.argsort(-full) if j not in set(inner[r]) and j not in seen and full[j] != full[inner[r, 9]]]
    worse = list(items[r][:9]) + [int(run.item_ids[outside[0]])]
    wrong = _rewrite(result.path, tmp_path / "wrong.parquet", r,
                     items=worse, scores=list(df["score"][r][:9]) + [float(full[outside[0]])])
    v = verify_sample(path, wrong, 300)
    assert (v.identical, v.equal) == (base - 1, 299)

    # a training item written with a finite score
    leaked = list(items[r][:9]) + [int(run.item_ids[min(seen)])]
    v = verify_sample(path, _rewrite(result.path, tmp_path / "leak.parquet", r, items=leaked), 300)
    assert v.equal == 299

    df.filter(pl.col("user_id") != df["user_id"][r]).write_parquet(tmp_path / "short.parquet")
    v = verify_sample(path, tmp_path / "short.parquet", 300)
    assert (v.users, v.missing, v.equal, v.rows) == (300, 1, 299, 299)
    with pytest.raises(ConfigError):
        verify_sample(path, result.path, 0)


def test_score_no_ray_with_verify_from_the_command_line(tmp_path, capsys):
    import json

    from recsys_lab.cli.main import main

    runs = tmp_path / "runs"
    path = vector_run(runs, users=400, items=300)
    out = tmp_path / "topk.parquet"
    assert main(["score", "--run", path.name, "--out", str(out), "-k", "5", "--no-ray", "--verify", "50",
                 "--runs-dir", str(runs)]) == 0
    text = capsys.readouterr().out
    assert "400 users' top-5" in text and "no Ray" in text and "1.000000 equal up to ties" in text
    record = json.loads((tmp_path / "topk.verify.json").read_text())
    assert record["users"] == record["equal"] == 50 and record["run"] == path.name
