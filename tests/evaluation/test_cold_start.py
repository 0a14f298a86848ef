"""Cold start measured: the onboarding protocol and the fold-in-vs-retrain comparison on planted item spaces."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.evaluation import cold_start as cs
from recsys_lab.evaluation.histories import Histories
from recsys_lab.evaluation.ranking import ranking_metrics
from recsys_lab.models.foldin import FoldIn
from recsys_lab.retrieval.topk import top_k

from ..conftest import planted_items as _planted


def test_ndcg_recall_match_a_slow_loop():
    rng = np.random.default_rng(4)
    ranked = np.array([rng.permutation(20)[:5] for _ in range(30)])
    targets = sp.random(30, 20, density=0.2, random_state=5, format="csr")
    targets.data[:] = 1
    targets = targets.tolil()
    targets[3] = 0
    targets[3, 0] = 1
    for r in range(30):  # every row has a positive (what the evaluation protocols guarantee)
        targets[r, r % 20] = 1
    targets = targets.tocsr()
    values = ranking_metrics(ranked, np.arange(30), targets, 5, per_user=True)  # foldin's own copy is gone
    ndcg, rec = values["ndcg@5"], values["recall@5"]
    for r in range(30):
        truth = set(targets[r].indices)
        dcg = sum(1 / np.log2(j + 2) for j, i in enumerate(ranked[r]) if i in truth)
        idcg = sum(1 / np.log2(j + 2) for j in range(min(len(truth), 5)))
        assert ndcg[r] == pytest.approx(dcg / idcg)
        assert rec[r] == pytest.approx(len(truth & set(ranked[r])) / len(truth))


def test_onboarding_curve_protocol_on_a_planted_space():
    v, pop = _planted()
    # user 0 likes the unpopular cluster A (items 0..29), user 1 the popular B, user 2 has only 2 positives
    hist = Histories.from_lists([[0, 5, 9, 12, 20, 25, 3], [30, 35, 41, 50, 55, 59, 33], [1, 2]], users=np.array([7, 8, 9]))
    res = cs.onboarding_curve(v, pop, hist, ns=(0, 1, 3, 5), k=5)
    assert res.per_n[0]["users"].tolist() == [7, 8, 9]
    assert res.per_n[3]["users"].tolist() == [7, 8]  # user 9 has fewer than n + 1 positives
    assert res.per_n[5]["n_targets"].tolist() == [2, 2]
    np.testing.assert_array_equal(res.per_n[0]["foldin.ndcg"], res.per_n[0]["popularity.ndcg"])  # n=0: popularity
    assert res.per_n[3]["foldin.ndcg"][0] > 0 and res.per_n[3]["popularity.ndcg"][0] == 0
    m = res.means()
    assert m["n_users@n5"] == 2 and m["foldin.ndcg@5@n3"] == pytest.approx(res.per_n[3]["foldin.ndcg"].mean())
    d = res.difference(3)
    assert d["n_users"] == 2 and d["ci_low"] <= d["delta"] <= d["ci_high"]
    assert [r["n"] for r in res.table()] == [0, 1, 3, 5]


def test_onboarding_items_are_never_candidates():
    v, pop = _planted()
    hist = Histories.from_lists([[30, 31, 32, 33, 34, 35]])  # the picks are the most popular items too
    pop[30:35] = 1000.0
    pop[35] = 500.0
    res = cs.onboarding_curve(v, pop, hist, ns=(5,), k=1)
    # the target 35 is top-1 for most-popular only because the picks 30..34 are excluded
    assert res.per_n[5]["popularity.ndcg"][0] == 1.0
    ranked, _ = top_k(np.ones((1, 1), np.float32), pop[:, None].astype(np.float32), 5,
                      exclude=hist.window(np.array([0]), np.array([0]), np.array([5]), len(v)))
    assert not set(ranked[0]) & {30, 31, 32, 33, 34}


def test_retrain_recovery_is_one_when_the_retrain_is_the_fold_in():
    v, pop = _planted()
    hist = Histories.from_lists([[0, 1, 2, 3], [40, 41, 42]], users=np.array([0, 1]))
    user_vecs = FoldIn(v).users(sp.csr_matrix((np.ones(7), [0, 1, 2, 3, 40, 41, 42], [0, 4, 7]), shape=(2, 60)))
    exclude = sp.csr_matrix((np.ones(7), [0, 1, 2, 3, 40, 41, 42], [0, 4, 7]), shape=(2, 60))
    # the test positives are each user's top 2: the retrain (= the fold-in) scores NDCG 1, popularity less, so
    # ``recovered`` is defined and exactly 1 (targets scoring NDCG 0 everywhere gave a NaN the test accepted)
    targets = [top_k(user_vecs[r:r + 1], v, 2, exclude=exclude[r])[0][0] for r in range(2)]
    test = sp.csr_matrix((np.ones(4), np.concatenate(targets), [0, 2, 4]), shape=(2, 60))
    r = cs.retrain_recovery(v, user_vecs, pop, hist, test, exclude, last=None, k=5)
    np.testing.assert_array_equal(r.ndcg["foldin"], r.ndcg["retrain"])
    np.testing.assert_allclose(r.ndcg["retrain"], 1.0)
    m = r.means()
    assert m["n_users"] == 2 and m["recovered"] == pytest.approx(1.0)


def test_cold_start_metrics_from_split_columns():
    v, pop = _planted()
    # user 0 cold (test only), user 1 warm (train then test); rows: user, item, ts, weight
    rows = np.array([[1, 30, 1, 5], [1, 31, 2, 5], [1, 2, 3, 1],                     # training (ts < 10)
                     [0, 0, 10, 5], [0, 3, 11, 5], [0, 7, 12, 2], [0, 9, 13, 4],     # cold user's test rows
                     [1, 32, 14, 5]])
    user, item, ts, w = rows.T
    test = sp.csr_matrix(([1.0, 1.0, 1.0, 1.0], ([0, 0, 0, 1], [0, 3, 9, 32])), shape=(2, 60))
    exclude = sp.csr_matrix(([1.0, 1.0, 1.0], ([1, 1, 1], [30, 31, 2])), shape=(2, 60))
    m, onboarding, recovery = cs.cold_start_metrics(
        v, np.zeros((2, 5), np.float32), pop, user_idx=user, item_idx=item, ts=ts, positive=w >= 4, is_test=ts >= 10,
        cold_users=np.array([0]), warm_users=np.array([1]), test=test, exclude=exclude, ns=(0, 1, 2), k=5)
    assert onboarding.per_n[2]["n_targets"].tolist() == [1]  # positives 0, 3, 9 in time order; 7 is not positive
    # the interval keys are the standard ones (foldin once wrote .lo/.hi and pipeline renamed them back)
    assert m["cold.n_users@n2"] == 1 and {"cold.diff.ndcg@5@n2.ci_low", "cold.diff.ndcg@5@n2.ci_high"} <= set(m)
    assert not any(key.endswith((".lo", ".hi")) for key in m)
    assert m["warm.n_users"] == 1 and recovery.users.tolist() == [1]
    assert m["cold.foldin.ndcg@5@n0"] == m["cold.popularity.ndcg@5@n0"]


def test_onboarding_plot_has_the_curves_and_the_difference():
    from recsys_lab.report import plots

    v, pop = _planted()
    hist = Histories.from_lists([[0, 5, 9, 12, 20, 25, 3], [30, 35, 41, 50, 55, 59, 33]])
    fig = plots.onboarding_curve(cs.onboarding_curve(v, pop, hist, ns=(0, 1, 3), k=5))  # k read from the result
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
    m, onboarding, recovery = cs.cold_start_from_split(frame, split, np.ones((2, 5), np.float32), v,
                                                      positive_threshold=4.0, ns=(0, 5), k=5)
    assert m["cold.n_users@n5"] == 1 and onboarding.per_n[5]["n_targets"].tolist() == [2]
    assert m["warm.n_users"] == 1 and m["cold.foldin.ndcg@5@n5"] > 0


