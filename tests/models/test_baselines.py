"""EASE and implicit ALS on planted data with known answers."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.models.baselines import ease_vectors, fit_als, fit_ease


@pytest.fixture()
def checkerboard():
    """Two user groups liking two disjoint item groups; the diagonal (one liked item per user) withheld."""
    n = 20
    truth = np.zeros((n, n), dtype=np.float32)
    truth[: n // 2, : n // 2] = 1
    truth[n // 2:, n // 2:] = 1
    train = truth.copy()
    train[np.arange(n), np.arange(n)] = 0
    return sp.csr_matrix(train), truth


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
