"""Exact top-k retrieval and ranking metrics, vectorised with numpy.

Scores are dot products of user and item vectors (``user_vecs @ item_vecs.T``); items a user has already
seen are excluded (score -inf). Metrics are averaged over the given users, each with at least one test
positive. Definitions follow Manning, Raghavan, Schütze, "Introduction to Information Retrieval" (2008),
ch. 8 (precision, recall, MAP, MRR) and Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR
techniques", TOIS 2002 (NDCG, binary gain, log2 discount). Ties in scores count in the positive's favour
(strictly greater scores rank above it).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lab.retrieval.topk import _batches, _masked_scores, top_k  # top_k re-exported: evaluation.top_k is public

__all__ = ["top_k", "ranking_metrics", "rank_metrics", "coverage_at_k", "per_user_metrics", "evaluate",
           "recall_overlap", "popularity_vectors", "sample_users"]


def _hits(items: np.ndarray, users: np.ndarray, test: sp.csr_matrix) -> np.ndarray:
    """Boolean (n, k): is ``items[r, j]`` a test positive of ``users[r]``."""
    n_items = test.shape[1]
    sub = test[users].tocoo()
    truth = np.sort(sub.row.astype(np.int64) * n_items + sub.col)
    codes = np.arange(len(users), dtype=np.int64)[:, None] * n_items + items
    pos = np.clip(np.searchsorted(truth, codes), 0, max(len(truth) - 1, 0))
    return (truth[pos] == codes) if len(truth) else np.zeros(codes.shape, bool)


def ranking_metrics(items: np.ndarray, users: np.ndarray, test: sp.csr_matrix, k: int, *,
                    per_user: bool = False) -> dict:
    """precision@k, recall@k, NDCG@k (binary gain) and MAP@k of top-k lists.

    Parameters
    ----------
    items : ndarray of shape (n, >=k), int64
        Ranked item indices per user (from :func:`top_k`).
    users : ndarray of shape (n,), int64
        The user of each row; each must have at least one positive in ``test``.
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    k : int
    per_user : bool
        Return one value per user (ndarray of shape (n,), float64) instead of the mean.

    Returns
    -------
    dict
        ``precision@k``: hits / k; ``recall@k``: hits / n_pos; ``ndcg@k``: DCG / ideal DCG with
        ``DCG = sum_j hit_j / log2(j + 2)``; ``map@k``: ``sum_j precision@j * hit_j / min(n_pos, k)``.
        Means over users (NaN for no users), or per-user arrays.
    """
    names = [f"{m}@{k}" for m in ("precision", "recall", "ndcg", "map")]
    if len(users) == 0:
        return {n: (np.zeros(0) if per_user else float("nan")) for n in names}
    hits = _hits(items[:, :k], users, test).astype(np.float64)
    if hits.shape[1] < k:  # fewer than k items in the catalogue: the missing ranks are misses
        hits = np.hstack([hits, np.zeros((len(hits), k - hits.shape[1]))])
    n_pos = test.getnnz(axis=1)[users].astype(np.float64)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = hits @ discount
    ideal = np.concatenate([[0.0], np.cumsum(discount)])[np.minimum(n_pos, k).astype(int)]
    prec_at_j = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (prec_at_j * hits).sum(axis=1) / np.minimum(n_pos, k)
    values = dict(zip(names, (hits.sum(axis=1) / k, hits.sum(axis=1) / n_pos, dcg / ideal, ap)))
    return values if per_user else {n: float(np.mean(v)) for n, v in values.items()}


def rank_metrics(user_vecs: np.ndarray, item_vecs: np.ndarray, users: np.ndarray, test: sp.csr_matrix,
                 exclude: sp.csr_matrix | None = None, *, per_user: bool = False) -> dict:
    """MRR and AUC over the full ranking of non-excluded items.

    Parameters
    ----------
    user_vecs, item_vecs : ndarray, shapes (n_users, d), (n_items, d)
    users : ndarray of shape (n,), int64
        Users to evaluate, each with at least one test positive.
    test : csr_matrix of shape (n_users, n_items)
    exclude : csr_matrix of shape (n_users, n_items), optional
        Items removed from the candidates (seen in training).
    per_user : bool
        Return per-user arrays of shape (n,) instead of means.

    Returns
    -------
    dict
        ``mrr``: mean over users of 1 / (1-based rank of the best-ranked test positive);
        ``auc``: mean over users of the share of (positive, negative) candidate pairs ranked correctly,
        negatives being the non-excluded, non-positive items (NaN for a user without negatives).
    """
    if len(users) == 0:
        return {m: (np.zeros(0) if per_user else float("nan")) for m in ("mrr", "auc")}
    users = np.asarray(users, dtype=np.int64)
    n_items = len(item_vecs)
    rr = np.empty(len(users))
    auc = np.empty(len(users))
    n_excl = exclude.getnnz(axis=1) if exclude is not None else np.zeros(test.shape[0], int)
    for lo, hi in _batches(len(users), n_items):
        u = users[lo:hi]
        s = _masked_scores(user_vecs, item_vecs, u, exclude)
        sub = test[u].tocoo()
        pos_scores = s[sub.row, sub.col]
        s[sub.row, sub.col] = -np.inf  # now only negatives keep their scores
        # negatives strictly above each positive (= its 0-based rank for the best-ranked positive)
        neg_above = np.empty(len(pos_scores), dtype=np.int64)
        for plo, phi in _batches(len(pos_scores), n_items):
            neg_above[plo:phi] = (s[sub.row[plo:phi]] > pos_scores[plo:phi, None]).sum(axis=1)
        n_pos = np.bincount(sub.row, minlength=hi - lo)
        n_neg = n_items - n_excl[u] - n_pos
        best = np.full(hi - lo, np.iinfo(np.int64).max)
        np.minimum.at(best, sub.row, neg_above)
        rr[lo:hi] = 1.0 / (best + 1.0)
        per_user_neg_above = np.bincount(sub.row, weights=neg_above, minlength=hi - lo)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc[lo:hi] = np.where(n_neg > 0, 1.0 - per_user_neg_above / (n_pos * np.maximum(n_neg, 1)), np.nan)
    if per_user:
        return {"mrr": rr, "auc": auc}
    return {"mrr": float(np.mean(rr)), "auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan")}


def coverage_at_k(items: np.ndarray, n_items: int, k: int) -> float:
    """Catalog coverage@k: share of the catalog appearing in at least one user's top-k list.

    Parameters
    ----------
    items : ndarray of shape (n_users, >= k), int
        Top-k lists of internal item indices, best first.
    n_items : int
        Catalogue size.
    k : int
        Cut-off: the first ``k`` columns are counted.

    Returns
    -------
    float
        In [0, 1]; NaN for an empty catalogue.
    """
    return float(len(np.unique(items[:, :k])) / n_items) if n_items else float("nan")


def recall_overlap(approx: np.ndarray, exact: np.ndarray) -> float:
    """Recall of approximate neighbour lists against exact ones: mean |approx_i ∩ exact_i| / |exact_i|.

    Parameters
    ----------
    approx, exact : ndarray of shape (n, k), int64

    Returns
    -------
    float
        In [0, 1]: the share of exact neighbours the approximate lists hold, over all ``n * k`` slots.
    """
    k = exact.shape[1]
    n = exact.shape[0]
    codes_e = np.arange(n)[:, None] * (1 + max(exact.max(), approx.max())) + exact
    codes_a = np.arange(n)[:, None] * (1 + max(exact.max(), approx.max())) + approx
    return float(np.isin(codes_a, codes_e).sum() / (n * k))


def sample_users(users: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded sample of at most ``n`` users (all when ``n`` is 0 or not smaller), sorted; int64.

    Parameters
    ----------
    users : ndarray of shape (n_users,), int
        Internal user indices.
    n : int
        Sample size (0: no sampling).
    seed : int
        Seed of the sample.

    Returns
    -------
    ndarray of shape (min(n, n_users),), int64
        Sorted when sampled; ``users`` as given otherwise.
    """
    users = np.asarray(users, dtype=np.int64)
    if n <= 0 or len(users) <= n:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))


def popularity_vectors(train: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Most-popular baseline as vectors: user vectors of ones (n_users, 1) and item training counts (n_items, 1).

    Their dot product ranks every user's items by training popularity, so the baseline goes through the
    same :func:`evaluate` path as the model.

    Parameters
    ----------
    train : csr_matrix of shape (n_users, n_items)
        Training interactions (summed per item column).

    Returns
    -------
    user_vecs : ndarray of shape (n_users, 1), float32
        Ones.
    item_vecs : ndarray of shape (n_items, 1), float32
        Column sums of ``train``.
    """
    counts = np.asarray(train.sum(axis=0), dtype=np.float32).reshape(-1, 1)
    return np.ones((train.shape[0], 1), dtype=np.float32), counts


def per_user_metrics(user_vecs: np.ndarray, item_vecs: np.ndarray, test: sp.csr_matrix, *, users: np.ndarray,
                     exclude: sp.csr_matrix | None = None, k: int = 10) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every ranking metric per user, and the top-k lists they came from (computed once, shared).

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    users : ndarray of shape (n,), int64
        Users to evaluate (each with at least one test positive).
    exclude : csr_matrix, optional
        Items never recommended per user (seen in training).
    k : int
        Cut-off (default 10).

    Returns
    -------
    values : dict of str to ndarray of shape (n,), float64
        ``precision@k, recall@k, ndcg@k, map@k, mrr, auc`` per user, in ``users`` order.
    items : ndarray of shape (n, min(k, n_items)), int64
        The top-k lists (for coverage and beyond-accuracy measures).
    """
    users = np.asarray(users, dtype=np.int64)
    items, _ = top_k(user_vecs, item_vecs, k, users=users, exclude=exclude)
    values = ranking_metrics(items, users, test, k, per_user=True)
    values.update(rank_metrics(user_vecs, item_vecs, users, test, exclude, per_user=True))
    return values, items


def evaluate(user_vecs: np.ndarray, item_vecs: np.ndarray, test: sp.csr_matrix, *, users: np.ndarray,
             exclude: sp.csr_matrix | None = None, k: int = 10) -> dict[str, float]:
    """All ranking metrics of one model on one split, averaged over users.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    users : ndarray of int64
        Users to evaluate (each with at least one test positive).
    exclude : csr_matrix, optional
        Items never recommended per user (seen in training).
    k : int
        Cut-off (default 10).

    Returns
    -------
    dict
        ``precision@k, recall@k, ndcg@k, map@k, mrr, auc, coverage@k`` and ``n_users``.
        Coverage is over top-k lists of the evaluated users.
    """
    values, items = per_user_metrics(user_vecs, item_vecs, test, users=users, exclude=exclude, k=k)
    out = {name: (float(np.nanmean(v)) if len(v) and np.isfinite(v).any() else float("nan"))
           for name, v in values.items()}
    out[f"coverage@{k}"] = coverage_at_k(items, len(item_vecs), k)
    out["n_users"] = int(len(users))
    return out
