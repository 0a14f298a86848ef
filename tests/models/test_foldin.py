"""Fold-in: known answers on planted item spaces, batch == single, slow reference loops, onboarding protocol."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.models import foldin as F
from recsys_lab.errors import ConfigError, DataError


@pytest.fixture
def item_vecs():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 6)).astype(np.float32)
    v[:, -1] = rng.normal(scale=0.3, size=40)
    return v


def _planted(n_items=60, d=4, seed=0):
    """Two clusters of items: 0..29 along +e0, 30..59 along -e0; cluster B is more popular (bias, counts)."""
    rng = np.random.default_rng(seed)
    v = rng.normal(scale=0.1, size=(n_items, d + 1)).astype(np.float32)
    half = n_items // 2
    v[:half, 0] += 2.0
    v[half:, 0] -= 2.0
    v[:, -1] = 0.0
    v[half:, -1] = 0.5
    pop = np.r_[np.full(half, 1.0), np.full(half, 10.0)] + rng.random(n_items)
    return v, pop


def _slow_ridge(item_vecs, items, weights, reg, alpha, base, offset, target):
    v = item_vecs[:, :-1].astype(np.float64)
    b = item_vecs[:, -1].astype(np.float64) if offset else np.zeros(len(v))
    p = np.zeros(len(v))
    c = np.ones(len(v))
    for j, w in zip(items, weights):
        p[j] = target
        c[j] += alpha * w
    y = p - b - v @ base
    a = v.T @ (c[:, None] * v) + reg * np.eye(v.shape[1])
    return base + np.linalg.solve(a, v.T @ (c * y))


def test_mean_is_the_weighted_mean_of_item_embeddings(item_vecs):
    u = F.fold_in(item_vecs, [3, 7, 7], [1.0, 1.0, 2.0], method="mean")
    expected = (item_vecs[3, :-1] + 3 * item_vecs[7, :-1]) / 4
    np.testing.assert_allclose(u[:-1], expected, rtol=1e-6)
    assert u[-1] == 1.0 and u.dtype == np.float32 and u.shape == (6,)


@pytest.mark.parametrize("offset", [False, True])
def test_ridge_matches_the_dense_normal_equations(item_vecs, offset):
    base = np.random.default_rng(1).normal(size=5)
    items, weights = [2, 5, 11], [1.0, 3.0, 0.5]
    u = F.fold_in(item_vecs, items, weights, method="ridge", base=base, reg=0.7, alpha=4.0, offset=offset, target=2.0)
    ref = _slow_ridge(item_vecs, items, weights, 0.7, 4.0, base, offset, 2.0)
    np.testing.assert_allclose(u[:-1], ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", F.METHODS)
def test_many_users_equal_one_by_one_and_chunking_changes_nothing(item_vecs, method, monkeypatch):
    rng = np.random.default_rng(2)
    m = sp.random(25, 40, density=0.1, random_state=3, format="csr", dtype=np.float32)
    m.data[:] = rng.random(m.nnz) + 0.5
    m = m.tolil()
    m[4] = 0  # a row without items
    m = m.tocsr()
    m.eliminate_zeros()
    base = rng.normal(size=(25, 6)).astype(np.float32)
    fold = F.FoldIn(item_vecs, method=method, seed=5)
    many = fold.users(m, base=base)
    monkeypatch.setattr(F, "_CHUNK_CELLS", 40)  # forces one user per chunk
    assert np.allclose(F.FoldIn(item_vecs, method=method, seed=5).users(m, base=base), many, atol=1e-5)
    if method != "bpr":  # bpr's negatives are drawn for the whole batch: a single row samples differently
        for r in (0, 7, 24):
            row = m[r]
            one = fold.user(row.indices, row.data, base=base[r])
            np.testing.assert_allclose(one, many[r], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(many[4, :-1], base[4, :-1])  # no items: the feature part alone
    assert np.all(many[:, -1] == 1.0)


def test_bpr_is_deterministic_given_a_seed_and_learns_the_cluster():
    v, _ = _planted()
    a = F.fold_in(v, [0, 1, 2], method="bpr", seed=3)
    b = F.fold_in(v, [0, 1, 2], method="bpr", seed=3)
    c = F.fold_in(v, [0, 1, 2], method="bpr", seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    top, _ = F.top_k_one(a, v, 10, exclude=[0, 1, 2])
    assert np.all(top < 30)  # every recommendation from the picked cluster, against the popular one's bias


@pytest.mark.parametrize("method", F.METHODS)
def test_every_method_recommends_the_picked_cluster(method):
    v, _ = _planted()
    u = F.fold_in(v, [31, 33, 40], method=method)
    top, scores = F.top_k_one(u, v, 5, exclude=[31, 33, 40])
    assert np.all(top >= 30) and not set(top) & {31, 33, 40}
    assert np.all(np.diff(scores) <= 0)


def test_bad_input_raises_typed_errors(item_vecs):
    with pytest.raises(ConfigError, match="method: unknown fold-in method 'als'"):
        F.FoldIn(item_vecs, method="als")
    with pytest.raises(DataError, match="expected 40 columns"):
        F.FoldIn(item_vecs).users(sp.csr_matrix((2, 39)))
    with pytest.raises(DataError, match="weights must be finite and >= 0"):
        F.fold_in(item_vecs, [1], [-1.0])
    with pytest.raises(DataError, match="weights: expected 2 values"):
        F.fold_in(item_vecs, [1, 2], [1.0])
    with pytest.raises(DataError, match="item_vecs: holds NaN"):
        F.FoldIn(np.full((3, 3), np.nan))
    for method in F.METHODS:
        with pytest.raises(DataError, match=r"base: expected shape \((1, )?5"):
            F.fold_in(item_vecs, [1], base=np.zeros(3), method=method)


def test_histories_sort_by_time_keep_first_occurrence_and_follow_the_given_users():
    h = F.Histories.from_arrays(np.array([1, 1, 0, 1, 1]), np.array([9, 8, 5, 9, 7]),
                                np.array([30, 10, 5, 5, 20]), users=np.array([1, 2, 0]))
    assert h.users.tolist() == [1, 2, 0]
    assert h.lengths.tolist() == [3, 0, 1]
    assert h.items[:3].tolist() == [9, 8, 7]  # 9 first seen at t=5, then 8 (10), 7 (20); the repeat at 30 dropped
    assert h.items[3:].tolist() == [5]


def test_ndcg_recall_match_a_slow_loop():
    rng = np.random.default_rng(4)
    ranked = np.array([rng.permutation(20)[:5] for _ in range(30)])
    targets = sp.random(30, 20, density=0.2, random_state=5, format="csr")
    targets.data[:] = 1
    targets = targets.tolil()
    targets[3] = 0
    targets[3, 0] = 1
    targets = targets.tocsr()
    ndcg, rec = F._ndcg_recall(ranked, targets, 5)
    for r in range(30):
        truth = set(targets[r].indices)
        if not truth:
            continue
        dcg = sum(1 / np.log2(j + 2) for j, i in enumerate(ranked[r]) if i in truth)
        idcg = sum(1 / np.log2(j + 2) for j in range(min(len(truth), 5)))
        assert ndcg[r] == pytest.approx(dcg / idcg)
        assert rec[r] == pytest.approx(len(truth & set(ranked[r])) / len(truth))


def test_onboarding_curve_protocol_on_a_planted_space():
    v, pop = _planted()
    # user 0 likes the unpopular cluster A (items 0..29), user 1 the popular B, user 2 has only 2 positives
    hist = F.Histories.from_lists([[0, 5, 9, 12, 20, 25, 3], [30, 35, 41, 50, 55, 59, 33], [1, 2]], users=np.array([7, 8, 9]))
    res = F.onboarding_curve(v, pop, hist, ns=(0, 1, 3, 5), k=5)
    assert res.per_n[0]["users"].tolist() == [7, 8, 9]
    assert res.per_n[3]["users"].tolist() == [7, 8]  # user 9 has fewer than n + 1 positives
    assert res.per_n[5]["n_targets"].tolist() == [2, 2]
    np.testing.assert_array_equal(res.per_n[0]["foldin.ndcg"], res.per_n[0]["popularity.ndcg"])  # n=0: popularity
    assert res.per_n[3]["foldin.ndcg"][0] > 0 and res.per_n[3]["popularity.ndcg"][0] == 0
    m = res.means()
    assert m["n_users@n5"] == 2 and m["foldin.ndcg@5@n3"] == pytest.approx(res.per_n[3]["foldin.ndcg"].mean())
    d = res.difference(3)
    assert d["n_users"] == 2 and d["lo"] <= d["diff"] <= d["hi"]
    assert [r["n"] for r in res.table()] == [0, 1, 3, 5]


def test_onboarding_items_are_never_candidates():
    v, pop = _planted()
    hist = F.Histories.from_lists([[30, 31, 32, 33, 34, 35]])  # the picks are the most popular items too
    pop[30:35] = 1000.0
    pop[35] = 500.0
    res = F.onboarding_curve(v, pop, hist, ns=(5,), k=1)
    # the target 35 is top-1 for most-popular only because the picks 30..34 are excluded
    assert res.per_n[5]["popularity.ndcg"][0] == 1.0
    ranked = F._rank(np.ones((1, 1), np.float32), pop[:, None].astype(np.float32),
                     hist._slice(np.array([0]), np.array([0]), np.array([5]), len(v)), 5)
    assert not set(ranked[0]) & {30, 31, 32, 33, 34}


def test_retrain_recovery_is_one_when_the_retrain_is_the_fold_in():
    v, pop = _planted()
    hist = F.Histories.from_lists([[0, 1, 2, 3], [40, 41, 42]], users=np.array([0, 1]))
    user_vecs = F.FoldIn(v).users(sp.csr_matrix((np.ones(7), [0, 1, 2, 3, 40, 41, 42], [0, 4, 7]), shape=(2, 60)))
    exclude = sp.csr_matrix((np.ones(7), [0, 1, 2, 3, 40, 41, 42], [0, 4, 7]), shape=(2, 60))
    # the test positives are each user's top 2: the retrain (= the fold-in) scores NDCG 1, popularity less, so
    # ``recovered`` is defined and exactly 1 (the old targets gave NDCG 0 everywhere and a NaN it accepted)
    targets = [F.top_k_one(user_vecs[r], v, 2, exclude=exclude[r].indices)[0] for r in range(2)]
    test = sp.csr_matrix((np.ones(4), np.concatenate(targets), [0, 2, 4]), shape=(2, 60))
    r = F.retrain_recovery(v, user_vecs, pop, hist, test, exclude, last=None, k=5)
    np.testing.assert_array_equal(r.ndcg["foldin"], r.ndcg["retrain"])
    np.testing.assert_allclose(r.ndcg["retrain"], 1.0)
    m = r.means()
    assert m["n_users"] == 2 and m["popularity.ndcg@5"] < 1 and m["recovered"] == pytest.approx(1.0)


def test_cold_start_metrics_from_split_columns():
    v, pop = _planted()
    # user 0 cold (test only), user 1 warm (train then test); rows: user, item, ts, weight
    rows = np.array([[1, 30, 1, 5], [1, 31, 2, 5], [1, 2, 3, 1],                     # training (ts < 10)
                     [0, 0, 10, 5], [0, 3, 11, 5], [0, 7, 12, 2], [0, 9, 13, 4],     # cold user's test rows
                     [1, 32, 14, 5]])
    user, item, ts, w = rows.T
    test = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 0, 0, 1], [0, 3, 9, 32])), shape=(2, 60))
    exclude = sp.csr_matrix(([1.0, 1.0, 1.0], ([1, 1, 1], [30, 31, 2])), shape=(2, 60))
    m, onboarding, recovery = F.cold_start_metrics(
        v, np.zeros((2, 5), np.float32), pop, user_idx=user, item_idx=item, ts=ts, positive=w >= 4, is_test=ts >= 10,
        cold_users=np.array([0]), warm_users=np.array([1]), test=test, exclude=exclude, ns=(0, 1, 2), k=5)
    assert onboarding.per_n[2]["n_targets"].tolist() == [1]  # positives 0, 3, 9 in time order; 7 is not positive
    assert m["cold.n_users@n2"] == 1 and "cold.diff.ndcg@5@n2.lo" in m
    assert m["warm.n_users"] == 1 and recovery.users.tolist() == [1]
    assert m["cold.foldin.ndcg@5@n0"] == m["cold.popularity.ndcg@5@n0"]


def test_onboarding_plot_has_the_curves_and_the_difference():
    from recsys_lab.report import plots

    v, pop = _planted()
    hist = F.Histories.from_lists([[0, 5, 9, 12, 20, 25, 3], [30, 35, 41, 50, 55, 59, 33]])
    fig = plots.onboarding_curve(F.onboarding_curve(v, pop, hist, ns=(0, 1, 3), k=5).table(), k=5)
    left, right = fig.axes
    assert [line.get_label() for line in left.get_lines()] == ["fold-in", "most-popular"]
    assert right.get_ylabel() == "fold-in - most-popular, NDCG@5"


def test_cold_start_from_split_takes_a_polars_frame_and_a_split():
    from datetime import datetime, timedelta, timezone

    import polars as pl

    from recsys_lab.config import SplitConfig
    from recsys_lab.split import temporal_split

    v, pop = _planted()
    t0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
    rows = [(1, j, 5.0, t0 + timedelta(hours=j)) for j in range(30, 40)]                # warm user 1, early
    rows += [(0, j, 5.0, t0 + timedelta(days=10, hours=j)) for j in (0, 3, 5, 9, 11, 13, 17)]  # cold user 0, late
    rows += [(1, 45, 5.0, t0 + timedelta(days=11))]
    frame = pl.DataFrame(rows, schema=["user_idx", "item_idx", "weight", "ts"], orient="row")
    split = temporal_split(frame, (2, 60), SplitConfig(test_fraction=0.45, validation_fraction=0.0),
                           positive_threshold=4.0)
    m, onboarding, recovery = F.cold_start_from_split(frame, split, np.ones((2, 5), np.float32), v,
                                                      positive_threshold=4.0, ns=(0, 5), k=5)
    assert m["cold.n_users@n5"] == 1 and onboarding.per_n[5]["n_targets"].tolist() == [2]
    assert m["warm.n_users"] == 1 and m["cold.foldin.ndcg@5@n5"] > 0


def test_the_prior_is_a_posterior_mean_worth_prior_strength_items(item_vecs):
    prior = np.arange(5, dtype=np.float64)
    u = F.fold_in(item_vecs, [3, 7], method="mean", prior=prior, prior_strength=2.0)
    np.testing.assert_allclose(u[:-1], (item_vecs[3, :-1] + item_vecs[7, :-1] + 2 * prior) / 4, rtol=1e-6)
    m = sp.csr_matrix(([1.0, 1.0], ([0, 0], [3, 7])), shape=(2, 40))
    many = F.FoldIn(item_vecs, prior=prior, prior_strength=2.0).users(m)
    np.testing.assert_allclose(many[0], u, rtol=1e-6)
    np.testing.assert_allclose(many[1, :-1], prior)  # no items: the average user
    np.testing.assert_array_equal(F.fold_in(item_vecs, [3, 7], prior=prior, prior_strength=0.0),
                                  F.fold_in(item_vecs, [3, 7]))
    users = np.c_[np.random.default_rng(0).normal(size=(6, 5)), np.ones(6)]
    np.testing.assert_allclose(F.average_user(users, np.array([1, 4])), users[[1, 4], :-1].mean(axis=0))
    with pytest.raises(DataError, match="prior: expected 5 finite values"):
        F.FoldIn(item_vecs, prior=np.zeros(3))
