"""Champion vs challenger: production's vectors mapped into the candidate's index space and paired per user."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.evaluation import champion
from recsys_lab.evaluation.champion import RunVectors
from recsys_lab.evaluation.ranking import per_user_metrics


def _space(n_users=6, n_items=8, d=3, seed=0):
    rng = np.random.default_rng(seed)
    users = np.c_[rng.normal(size=(n_users, d)), np.ones(n_users)].astype(np.float32)
    items = rng.normal(size=(n_items, d + 1)).astype(np.float32)
    return users, items


def test_the_same_run_as_production_is_itself_item_for_item():
    u, i = _space()
    ids_u, ids_i = np.arange(100, 106), np.arange(200, 208)
    prod = RunVectors(ids_u, ids_i, u, i)
    train = sp.csr_matrix((6, 8), dtype=np.float32)
    pu, pi, known_users, known_items = champion.production_vectors(prod, ids_u, ids_i, train, np.arange(6))
    np.testing.assert_array_equal(pu, u)
    np.testing.assert_array_equal(pi, i)
    assert (known_users, known_items) == (6, 8)


def test_unknown_items_are_never_recommended_and_unknown_users_are_folded_in():
    u, i = _space()
    prod = RunVectors(np.array([100, 101]), np.array([200, 201, 202, 203]), u[:2], i[:4])
    train = sp.csr_matrix(([1.0, 1.0, 1.0], ([2, 2, 2], [0, 1, 4])), shape=(3, 6))  # user 999 trained on 203, 202, 998
    pu, pi, known_users, known_items = champion.production_vectors(
        prod, np.array([101, 100, 999]), np.array([203, 202, 201, 200, 998, 997]), train, np.array([0, 1, 2]))
    assert (known_users, known_items) == (2, 4)
    assert np.all(pi[4:, -1] == -1e9) and np.all(pu[:, -1] == 1.0)
    np.testing.assert_array_equal(pu[0], u[1])                  # ids matched, not positions
    np.testing.assert_array_equal(pi[0], i[3])
    # production's cold path for user 999: the mean of its known items with production's average user as prior
    expected = (i[3, :-1].astype(np.float64) + i[2, :-1] + u[:2, :-1].astype(np.float64).mean(axis=0)) / 3
    np.testing.assert_allclose(pu[2, :-1], expected, rtol=1e-5)


def test_compare_pairs_each_metric_per_user_and_names_the_keys():
    u, i = _space(20, 12)
    test = sp.random(20, 12, density=0.3, random_state=1, format="csr")
    test.data[:] = 1
    users = np.flatnonzero(test.getnnz(axis=1) > 0)
    ids_u, ids_i = np.arange(20), np.arange(12)
    mine, _ = per_user_metrics(u, i, test, users=users, k=5)
    r = champion.compare(RunVectors(ids_u, ids_i, u, i), mine, ["ndcg@5", "recall@5", "unknown@5"],
                         user_ids=ids_u, item_ids=ids_i, train=sp.csr_matrix((20, 12)), test=test,
                         exclude=None, eval_users=users, k=5, n_resamples=50)
    assert set(r.comparison) == {"ndcg@5", "recall@5"}
    assert r.metrics["vs.production.ndcg@5"] == 0.0 and r.metrics["production.ndcg@5"] == pytest.approx(mine["ndcg@5"].mean())
    assert {"vs.production.ndcg@5.ci_low", "vs.production.ndcg@5.ci_high", "production.known_users"} <= set(r.metrics)
    np.testing.assert_array_equal(r.per_user["ndcg@5"], mine["ndcg@5"])


def test_stability_is_one_against_itself_and_skipped_with_too_few_shared_items():
    u, i = _space(10, 30)
    ids_u, ids_i = np.arange(10), np.arange(30)
    prod = RunVectors(ids_u, ids_i, u, i)
    from recsys_lab.retrieval.topk import top_k

    users = np.arange(10)
    lists, _ = top_k(u, i, 5, users=users)
    out = champion.stability(prod, i, lists, user_ids=ids_u, item_ids=ids_i, train=sp.csr_matrix((10, 30)),
                             exclude=None, eval_users=users, k=5)
    assert out["embedding.stability@5"] == 1.0 and out["recs.churn@5"] == 0.0 and out["recs.shared_users"] == 10
    notes = []
    few = RunVectors(ids_u, ids_i[:3], u, i[:3])
    assert champion.stability(few, i, lists, user_ids=ids_u, item_ids=ids_i, train=sp.csr_matrix((10, 30)),
                              exclude=None, eval_users=users, k=5, notes=notes) == {}
    assert notes == ["stability skipped: only 3 items shared with production"]
