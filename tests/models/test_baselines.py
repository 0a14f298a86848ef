"""EASE and implicit ALS on planted data with known answers; the fast EASE against the obviously correct one."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.data.synthetic import generate
from recsys_lab.models.baselines import (
    ease_route,
    ease_size,
    ease_skip_reason,
    ease_vectors,
    fit_als,
    fit_ease,
)


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Two BLAS threads on a shared 2-core box made these small inversions 5-20x slower (spinning threads)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):
        yield


def _slow_ease(train, lam):
    """The EASE of session 3, kept as the reference: one dense float64 inversion of X^T X + lambda I, B = -P / diag(P),
    diag(B) = 0 (Steck 2019); returns the float64 scores X B."""
    n_items = train.shape[1]
    x = train.astype(np.float64)
    g = (x.T @ x).toarray()
    g[np.diag_indices(n_items)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices(n_items)] = 0.0
    return x.toarray() @ b


def _binary(users, items):
    x = sp.csr_matrix((np.ones(len(users)), (users, items)))
    x.data[:] = 1.0
    return x


def _generated(n_users, n_items, n_interactions, seed=0):
    log = generate(n_users, n_items, n_interactions, seed=seed).interactions
    x = _binary(log["user_id"].to_numpy(), log["item_id"].to_numpy())
    return sp.csr_matrix((x.data, x.indices, x.indptr), shape=(n_users, n_items))  # items never played stay


@pytest.fixture(scope="module")
def ml100k_positives(ml100k):
    """MovieLens 100k ratings >= 4 as a binary 943 x 1682 matrix (fewer users than items: the user route)."""
    r = ml100k.interactions.filter(ml100k.interactions["weight"] >= 4)
    x = _binary(r["user_id"].to_numpy() - 1, r["item_id"].to_numpy() - 1)
    return sp.csr_matrix((x.data, x.indices, x.indptr), shape=(943, 1682))


def _assert_same_scores(train, lam):
    u, i = ease_vectors(train, lam)
    ref = _slow_ease(train, lam)
    fast = u.astype(np.float64) @ i.T.astype(np.float64)
    assert u.dtype == np.float32 and i.dtype == np.float32 and fast.shape == ref.shape
    scale = np.abs(ref).max(axis=1, keepdims=True)
    scale[scale == 0] = 1.0
    assert np.abs(fast - ref).max(axis=1, keepdims=True).max() <= 1e-5 * scale.max()
    assert (np.abs(fast - ref) / scale).max() <= 1e-5  # per user, relative to that user's largest score


def test_ease_matches_the_closed_form(checkerboard):
    train, _ = checkerboard
    lam = 10.0
    u, i = ease_vectors(train, lam)
    x = train.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p / np.diag(p)  # Steck 2019, eq. 8
    np.testing.assert_allclose(u @ i.T, x @ b, atol=1e-4)
    assert np.allclose(np.diag(i), 0)


@pytest.mark.parametrize("fit", ["ease", "als"])
def test_baselines_recover_the_withheld_diagonal(checkerboard, fit):
    train, truth = checkerboard
    if fit == "ease":
        res = fit_ease(train, train, None)
    else:
        res = fit_als(train, train, None, grid=((8, 0.01, 10.0),), num_threads=1, seed=0)
    scores = res.user_vecs @ res.item_vecs.T
    scores[train.toarray() > 0] = -np.inf
    best = scores.argmax(axis=1)
    assert (truth[np.arange(20), best] == 1).mean() >= 0.9
    assert res.fit_seconds > 0 and res.user_vecs.dtype == np.float32


def test_hyper_parameters_are_chosen_on_validation(checkerboard):
    train, _ = checkerboard
    seen = []

    def validate(u, i):  # pretends lambda = 100 is best: the score peaks at the second candidate
        seen.append(len(seen))
        return [0.1, 0.5, 0.2][len(seen) - 1]

    res = fit_ease(train, train, validate, lambdas=(10.0, 100.0, 1000.0))
    assert res.params == {"lambda": 100.0} and [r["validation"] for r in res.grid] == [0.1, 0.5, 0.2]
    res = fit_als(train, train, lambda u, i: float(u.shape[1]), grid=((4, 0.1, 1.0), (8, 0.1, 1.0)), num_threads=1)
    assert res.params["factors"] == 8 and res.item_vecs.shape == (20, 8)


@pytest.mark.parametrize("lam", [50.0, 2000.0])
def test_fast_ease_scores_equal_the_slow_reference_on_movielens(ml100k_positives, lam):
    assert ease_route(*ml100k_positives.shape) == "users"
    _assert_same_scores(ml100k_positives, lam)


@pytest.mark.parametrize("shape", [(943, 1682, 50_000), (300, 2_000, 6_000), (900, 1_000, 8_000), (1_200, 500, 20_000)],
                         ids=["ml100k-sized", "few-users", "near-square", "few-items"])
def test_fast_ease_scores_equal_the_slow_reference_on_generated_logs(shape):
    n_users, n_items, n = shape
    train = _generated(n_users, n_items, n, seed=n_users)
    assert (train.getnnz(axis=0) == 0).any()  # items nobody played: their scores stay exactly 0
    for lam in (50.0, 1000.0):
        _assert_same_scores(train, lam)
    u, i = ease_vectors(train, 200.0)
    assert np.all((u @ i.T)[:, train.getnnz(axis=0) == 0] == 0)


def test_ease_routes_by_shape():
    assert ease_route(10, 20) == "users" and ease_route(20, 10) == "items" and ease_route(10, 10) == "items"
    assert ease_route(943, 1682) == "users" and ease_route(900, 1_000) == "items"  # two eighs cost 2.5x 7 inversions
    u, i = ease_vectors(_generated(40, 100, 400), 100.0)
    assert u.shape == (40, 40) and i.shape == (100, 40)  # users x users, not items x items
    u, i = ease_vectors(_generated(100, 40, 400), 100.0)
    assert u.shape == (100, 40) and i.shape == (40, 40)


@pytest.mark.parametrize("shape", [(300, 900, 5_000), (900, 300, 5_000)], ids=["users-route", "items-route"])
def test_fit_ease_chooses_the_lambda_the_slow_reference_would(shape):
    """The validation callback sees the same scores for every lambda (one factorisation shared) as the reference."""
    fit = _generated(*shape, seed=1)
    train = _generated(*shape, seed=2)
    lambdas = (50.0, 200.0, 1000.0)
    held = _generated(*shape, seed=3)

    def score(scores):  # a validation-like number: mean score of held-out positives minus the mean over all
        return float((scores * held.toarray()).sum() / held.nnz - scores.mean())

    res = fit_ease(fit, train, lambda u, i: score(u.astype(np.float64) @ i.T.astype(np.float64)), lambdas=lambdas)
    ref = [score(_slow_ease(fit, lam)) for lam in lambdas]
    np.testing.assert_allclose([r["validation"] for r in res.grid], ref, rtol=1e-5)
    assert res.params["lambda"] == lambdas[int(np.argmax(ref))]
    np.testing.assert_allclose(res.user_vecs.astype(np.float64) @ res.item_vecs.T.astype(np.float64),
                               _slow_ease(train, res.params["lambda"]), atol=1e-5)


def test_ease_size_and_skip_reason():
    assert ease_size(20_000, 17_000) == 17_000 and ease_size(1_900, 17_000) == 2_603  # 1,900 / 0.73
    assert ease_skip_reason(943, 1_682, 6_000) is None and ease_skip_reason(1_900, 17_000, 6_000) is None
    assert ease_skip_reason(20_000, 17_000, 6_000) == "17000 items > eval.ease_max_items 6000"
    assert "cost as much as 6850 items" in ease_skip_reason(5_000, 17_000, 6_000)
    assert "dense cells" in ease_skip_reason(30_000, 5_000, 6_000)  # cheap to factorise, too large to keep dense
    assert ease_skip_reason(20_000, 17_000, 20_000) is not None  # the cells bound holds whatever the setting


@pytest.mark.parametrize("shape", [(150, 700, 3_000), (700, 150, 3_000)], ids=["users-route", "items-route"])
def test_fast_ease_in_many_blocks_equals_the_slow_reference(shape, monkeypatch):
    """Item vectors are formed in blocks of columns (user route) or of mirrored rows of P (item route): 64 here."""
    from recsys_lab.models import baselines

    monkeypatch.setattr(baselines, "_BLOCK_CELLS", 1)
    _assert_same_scores(_generated(*shape, seed=4), 300.0)
