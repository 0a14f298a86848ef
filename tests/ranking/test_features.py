"""ranking.features: built from the log as of the cut-off only; popularity windows and affinity by hand."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_lab.ranking.candidates import generate
from recsys_lab.ranking.features import as_of, pair_features

T0 = datetime(2020, 1, 1)


def _log():
    # (user, item, day): the last two rows are after the cut-off (validation / test periods)
    rows = [(0, 0, 0), (0, 1, 170), (1, 1, 175), (1, 2, 179), (2, 0, 100), (0, 2, 200), (2, 3, 300)]
    return pl.DataFrame({"user_idx": [r[0] for r in rows], "item_idx": [r[1] for r in rows],
                         "ts": [T0 + timedelta(days=r[2]) for r in rows]})


def _seen(log, n_users=3, n_items=4):
    return sp.csr_matrix((np.ones(log.height, np.float32), (log["user_idx"].to_numpy(), log["item_idx"].to_numpy())),
                         shape=(n_users, n_items))


def test_popularity_windows_and_item_age_end_at_the_latest_seen_timestamp():
    log = _log()
    before = log.head(5)
    at = as_of(_seen(before), _seen(before), log)  # the whole log is passed; only seen pairs are read
    np.testing.assert_array_equal(at.item_counts["all"], [2, 2, 1, 0])
    np.testing.assert_array_equal(at.item_counts["7d"], [0, 1, 1, 0])      # days >= 172: (1,1,175), (1,2,179)
    np.testing.assert_array_equal(at.item_counts["28d"], [0, 2, 1, 0])
    np.testing.assert_array_equal(at.item_counts["180d"], [2, 2, 1, 0])    # day 0 is 179 days before 179
    np.testing.assert_allclose(at.item_age[:3], [179, 9, 0])
    assert np.isnan(at.item_age[3])


def test_features_use_nothing_after_the_cut_off():
    log = _log()
    before = log.head(5)
    seen = _seen(before)
    gens = {"a": (np.eye(3, 4, dtype=np.float32), np.eye(4, dtype=np.float32))}
    side = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0], [1, 0, 1]], np.float32))
    tokens = ["item=x", "genre=A", "genre=B"]
    cands = generate(gens, {"a": 4}, np.array([0, 1, 2]), exclude=None)
    X1, names = pair_features(cands, gens, as_of(seen, seen, before, item_features=side, item_tokens=tokens))
    # a different future (other validation/test rows, a seen pair replayed at day 400) changes nothing
    future = pl.concat([before, pl.DataFrame({"user_idx": [1, 2, 2], "item_idx": [3, 3, 0],
                                              "ts": [T0 + timedelta(days=d) for d in (181, 182, 400)]})])
    X2, _ = pair_features(cands, gens, as_of(seen, seen, future, item_features=side, item_tokens=tokens))
    np.testing.assert_array_equal(np.nan_to_num(X1, nan=-1), np.nan_to_num(X2, nan=-1))
    # affinity: user 0's positives are items 0 (A) and 1 (B): shares A 0.5, B 0.5; identity token left out
    aff = X1[:, names.index("user.affinity")]
    pair = {(int(cands.users[r]), int(i)): j for j, (r, i) in enumerate(zip(cands.row, cands.item))}
    assert aff[pair[(0, 2)]] == pytest.approx(0.5) and aff[pair[(2, 0)]] == pytest.approx(1.0)
    assert aff[pair[(2, 1)]] == pytest.approx(0.0)
    assert {"a.score", "a.z", "a.rank", "item.pop_7d", "item.age", "user.n_pos"} <= set(names)
