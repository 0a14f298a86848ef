"""ranking.blend: the blend's vectors rank like the weighted z-scores; weights are chosen on validation only."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.ranking.blend import blend_vectors, choose_weights, weight_grid


def test_weight_grid_is_the_simplex_simplest_first():
    grid = weight_grid(("a", "b"), 0.25)
    assert len(grid) == 5 and grid[0] in ({"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0})
    assert all(abs(sum(w.values()) - 1) < 1e-9 for w in grid)
    assert len(weight_grid(("a", "b", "c"), 0.1)) == 66


def test_blend_vectors_rank_like_the_weighted_per_user_z_scores():
    rng = np.random.default_rng(0)
    gens = {"a": (rng.normal(size=(7, 4)), rng.normal(size=(30, 4))),
            "b": (rng.normal(size=(7, 3)) * 5, rng.normal(size=(30, 3)))}
    w = {"a": 0.3, "b": 0.7}
    u, i = blend_vectors(gens, w)

    def z(s):
        return (s - s.mean(axis=1, keepdims=True)) / s.std(axis=1, keepdims=True)

    want = sum(w[g] * z(gens[g][0] @ gens[g][1].T) for g in gens)
    got = u @ i.T
    np.testing.assert_allclose(got - got.mean(axis=1, keepdims=True), want, atol=1e-4)


def _planted(n_users=60, n_items=40, seed=0):
    """Generator ``a`` knows the validation positives, ``b`` knows the test positives; nothing else does."""
    rng = np.random.default_rng(seed)
    a_scores, b_scores = rng.normal(size=(n_users, n_items)), rng.normal(size=(n_users, n_items))
    val = np.zeros((n_users, n_items), np.float32)
    test = np.zeros((n_users, n_items), np.float32)
    for u in range(n_users):
        val[u, np.argsort(-a_scores[u])[:3]] = 1
        test[u, np.argsort(-b_scores[u])[:3]] = 1
    gens = {g: (s.astype(np.float32), np.eye(n_items, dtype=np.float32)) for g, s in (("a", a_scores), ("b", b_scores))}
    return gens, sp.csr_matrix(val), sp.csr_matrix(test)


def test_weights_follow_the_validation_slice_never_a_test_only_signal():
    gens, val, test = _planted()
    users = np.arange(val.shape[0])
    weights, grid = choose_weights(gens, val, users, exclude=None, k=3, step=0.1)
    assert weights == {"a": 1.0, "b": 0.0}
    # the same choice with the test signal everywhere except in the validation labels: test is not an input
    assert choose_weights(gens, val, users, exclude=None, k=3, step=0.1)[0] == weights
    # had the test positives been the labels, b would win: the planted signal is real
    assert choose_weights(gens, test, users, exclude=None, k=3, step=0.1)[0] == {"a": 0.0, "b": 1.0}
    assert max(r["validation"] for r in grid) == pytest.approx(1.0)


def test_excluded_items_are_never_scored_as_hits():
    gens, val, _ = _planted()
    users = np.arange(val.shape[0])
    # excluding exactly the validation positives leaves nothing to find
    _, grid = choose_weights(gens, val, users, exclude=val, k=3, step=0.5)
    assert max(r["validation"] for r in grid) == 0.0
