"""Every vectorised metric against a slow, obviously correct loop (as lightfm's tests do)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.evaluation import ranking as ev
from recsys_lab.retrieval import topk


@pytest.fixture()
def problem():
    rng = np.random.default_rng(7)
    n_users, n_items, d = 40, 60, 5
    u = rng.normal(size=(n_users, d)).astype(np.float32)
    i = rng.normal(size=(n_items, d)).astype(np.float32)
    seen = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))
    test = sp.csr_matrix(((rng.random((n_users, n_items)) < 0.1) & (seen.toarray() == 0)).astype(np.float32))
    users = np.flatnonzero(test.getnnz(axis=1) > 0)
    return u, i, seen, test, users


def naive_ranking(u, i, seen, user):
    scores = u[user] @ i.T
    cands = [j for j in range(len(i)) if seen[user, j] == 0]
    return sorted(cands, key=lambda j: -scores[j]), scores


def naive_metrics(u, i, seen, test, users, k):
    out = {m: [] for m in ("precision", "recall", "ndcg", "map", "mrr", "auc")}
    for user in users:
        ranking, scores = naive_ranking(u, i, seen, user)
        rel = {j for j in range(i.shape[0]) if test[user, j] != 0}
        top = ranking[:k]
        hits = [1 if j in rel else 0 for j in top]
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(len(rel), k)))
        out["ndcg"].append(dcg / idcg)
        ap, n_hit = 0.0, 0
        for r, h in enumerate(hits):
            if h:
                n_hit += 1
                ap += n_hit / (r + 1)
        out["map"].append(ap / min(len(rel), k))
        first = next(r for r, j in enumerate(ranking) if j in rel)
        out["mrr"].append(1 / (first + 1))
        negs = [j for j in ranking if j not in rel]
        correct = sum(1 for p in rel for n in negs if scores[p] >= scores[n])
        out["auc"].append(correct / (len(rel) * len(negs)))
    return {m: float(np.mean(v)) for m, v in out.items()}


@pytest.mark.parametrize("k", [1, 5, 10])
def test_metrics_match_naive_loops(problem, k):
    u, i, seen, test, users = problem
    got = ev.evaluate(u, i, test, users=users, exclude=seen, k=k)
    want = naive_metrics(u, i, seen.toarray(), test.toarray(), users, k)
    for m in ("precision", "recall", "ndcg", "map"):
        assert got[f"{m}@{k}"] == pytest.approx(want[m], rel=1e-9, abs=1e-12), m
    assert got["mrr"] == pytest.approx(want["mrr"], rel=1e-9)
    assert got["auc"] == pytest.approx(want["auc"], rel=1e-9)
    assert got["n_users"] == len(users)


def test_top_k_is_exact_and_excludes_seen(problem):
    u, i, seen, _, _ = problem
    items, scores = ev.top_k(u, i, 7, exclude=seen)
    for user in range(len(u)):
        ranking, s = naive_ranking(u, i, seen.toarray(), user)
        assert items[user].tolist() == ranking[:7]
        np.testing.assert_allclose(scores[user], s[ranking[:7]], rtol=1e-5)
    assert not seen[np.arange(len(u))[:, None], items].toarray().any()


def test_top_k_batches_give_the_same_answer(problem, monkeypatch):
    u, i, seen, _, _ = problem
    full, _ = ev.top_k(u, i, 5, exclude=seen)
    monkeypatch.setattr(topk, "_BATCH_CELLS", 3 * i.shape[0])  # 3 users per batch
    batched, _ = ev.top_k(u, i, 5, exclude=seen)
    assert (full == batched).all()
    assert ev.rank_metrics(u, i, np.arange(len(u))[:1], seen)["mrr"] > 0


def test_coverage_and_recall_overlap():
    items = np.array([[0, 1], [1, 2]])
    assert ev.coverage_at_k(items, 10, 2) == pytest.approx(0.3)
    assert ev.recall_overlap(np.array([[1, 2], [3, 4]]), np.array([[2, 1], [3, 5]])) == pytest.approx(0.75)


def test_popularity_ranks_by_training_count():
    train = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 0], [0, 1, 1]], dtype=np.float32))
    u, i = ev.popularity_vectors(train)
    items, scores = ev.top_k(u, i, 3)
    # counts 1, 3, 1: item 1 first, then the tie 0, 2 in item order, for every user
    assert items.tolist() == [[1, 0, 2]] * 3 and scores.tolist() == [[3.0, 1.0, 1.0]] * 3


def test_no_users_gives_nan():
    empty = np.array([], dtype=np.int64)
    assert math.isnan(ev.ranking_metrics(np.zeros((0, 3), int), empty, sp.csr_matrix((2, 3)), 3)["ndcg@3"])


def _reference_top_k(u, i, k, seen):
    """Obviously correct: full scores, -inf on excluded items, sort by (-score, item)."""
    s = u @ i.T
    s[seen.toarray() > 0] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(s.shape[1]), s.shape), -s), axis=1)[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


@pytest.mark.parametrize("threads", [1, 2])
def test_top_k_threshold_path_is_exact_on_a_large_catalogue(monkeypatch, threads):
    """>= 2,048 items take the sampled-threshold path; it must equal a full sort, with excluded items, ties,
    rows where most items are excluded (threshold -inf: fallback) and rows with fewer than k items left."""
    monkeypatch.setattr(topk, "_BATCH_CELLS", 7 * 4000)  # several blocks, so both workers have blocks
    rng = np.random.default_rng(3)
    n_users, n_items, k = 60, 4000, 12
    u = rng.normal(size=(n_users, 8)).astype(np.float32)
    i = rng.normal(size=(n_items, 8)).astype(np.float32) * rng.lognormal(0, 0.5, (n_items, 1)).astype(np.float32)
    i[100:110] = i[5]  # ties: equal scores come in item order
    seen = (rng.random((n_users, n_items)) < 0.05)
    seen[0, :] = True
    seen[0, [7, 9, 3000]] = False  # 3 items left for k = 12: tail is excluded items at -inf
    seen[1, :3985] = True  # most of the catalogue, and so all of the threshold sample, excluded
    seen = sp.csr_matrix(seen.astype(np.float32))
    items, scores = ev.top_k(u, i, k, exclude=seen, threads=threads)
    want_i, want_s = _reference_top_k(u, i, k, seen)
    np.testing.assert_array_equal(items[1:], want_i[1:])
    np.testing.assert_allclose(scores, want_s, rtol=1e-5)
    assert sorted(items[0, :3].tolist()) == [7, 9, 3000] and np.isneginf(scores[0, 3:]).all()
    assert not seen[np.arange(1, n_users)[:, None], items[1:]].toarray().any()
    sub, _ = ev.top_k(u, i, k, users=np.array([5, 2]), exclude=seen)
    np.testing.assert_array_equal(sub, want_i[[5, 2]])


def test_top_k_threads_is_a_parameter(problem, monkeypatch):
    """``threads`` sets the block workers (a Ray worker passes its own CPUs); below 1 is a ConfigError."""
    import concurrent.futures

    from recsys_lab.errors import ConfigError

    u, i, seen, _, _ = problem
    monkeypatch.setattr(topk, "_BATCH_CELLS", 4 * len(i))  # several blocks
    pools = []
    real = concurrent.futures.ThreadPoolExecutor

    def spy(n, *args, **kwargs):
        pools.append(n)
        return real(n, *args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", spy)
    one, _ = ev.top_k(u, i, 5, exclude=seen, threads=1)
    two, _ = ev.top_k(u, i, 5, exclude=seen, threads=2)
    assert pools == [2] and (one == two).all()  # threads=1 runs in the caller's thread: no pool
    with pytest.raises(ConfigError, match="threads"):
        ev.top_k(u, i, 5, threads=0)


def test_top_k_with_k_at_or_above_the_catalogue_size(problem):
    u, i, seen, _, _ = problem
    items, scores = ev.top_k(u, i, 500, exclude=seen)
    assert items.shape == (len(u), len(i))
    for user in range(len(u)):
        assert sorted(items[user].tolist()) == list(range(len(i)))  # every item once
        n_left = len(i) - seen[user].nnz
        assert np.isfinite(scores[user, :n_left]).all() and np.isneginf(scores[user, n_left:]).all()


def test_evaluate_models_keys_intervals_and_paired_differences(problem):
    u, i, seen, test, users = problem
    r = ev.evaluate_models({"model": (u, i), "copy": (u, i), "popularity": ev.popularity_vectors(seen)}, test,
                           users=users, exclude=seen, k=5, n_resamples=100, split_stats={"n_train": 9, "method": "x"},
                           best_epoch=3, protocol="random", max_ci_width=0.0)
    m = r.metrics
    values, _ = ev.per_user_metrics(u, i, test, users=users, exclude=seen, k=5)
    assert m["ndcg@5"] == pytest.approx(values["ndcg@5"].mean()) and m["ndcg@5.ci_low"] <= m["ndcg@5"] <= m["ndcg@5.ci_high"]
    assert m["baseline.copy.ndcg@5"] == m["ndcg@5"] and m["vs.copy.ndcg@5"] == 0.0 and "vs.popularity.recall@5" in m
    assert "coverage@5" in m and "baseline.popularity.coverage@5" in m and "vs.model.ndcg@5" not in m
    assert (m["split.n_train"], m["eval.n_users"], m["eval.k"], m["fit.best_epoch"]) == (9, len(users), 5, 3)
    assert "split.method" not in m and m["eval.ndcg@5.ci_width"] == m["ndcg@5.ci_high"] - m["ndcg@5.ci_low"]
    assert len(r.warnings) == 1 and "random split" in r.warnings[0]   # wider than max_ci_width 0
    assert r.recommended["model"].shape == (len(users), 5) and list(r.per_user) == ["model", "copy", "popularity"]


def test_validation_scorer_is_the_mean_ndcg_of_the_sampled_users(problem):
    u, i, seen, test, users = problem
    users = users[:10]
    score = ev.validation_scorer(test, users, exclude=seen, k=5)
    items, _ = topk.top_k(u, i, 5, users=users, exclude=seen)
    assert score(u, i) == ev.ranking_metrics(items, users, test, 5)["ndcg@5"]
    assert ev.validation_scorer(test, users[:0], exclude=seen, k=5) is None
