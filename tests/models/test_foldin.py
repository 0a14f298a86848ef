"""Fold-in: known answers on planted item spaces, batch == single, slow reference loops, onboarding protocol."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.errors import ConfigError, DataError
from recsys_lab.models import foldin as F

from ..conftest import planted_items as _planted


@pytest.fixture
def item_vecs():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 6)).astype(np.float32)
    v[:, -1] = rng.normal(scale=0.3, size=40)
    return v




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
