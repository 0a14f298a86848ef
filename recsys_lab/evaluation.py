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

__all__ = ["top_k", "ranking_metrics", "rank_metrics", "coverage_at_k", "per_user_metrics", "evaluate",
           "recall_overlap", "popularity_vectors", "sample_users"]

_BATCH_CELLS = 1 << 24  # scores computed per batch: 16 M float32 = 64 MiB


def _batches(n_rows: int, n_items: int):
    step = max(1, _BATCH_CELLS // max(n_items, 1))
    for lo in range(0, n_rows, step):
        yield lo, min(lo + step, n_rows)


def _masked_scores(user_vecs: np.ndarray, item_vecs: np.ndarray, users: np.ndarray,
                   exclude: sp.csr_matrix | None) -> np.ndarray:
    scores = user_vecs[users] @ item_vecs.T
    if exclude is not None:
        sub = exclude[users]
        rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
        scores[rows, sub.indices] = -np.inf
    return scores


def _full_select(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row of ``s`` by partial sort of the whole row (any k)."""
    n_rows, n = s.shape
    part = np.argpartition(-s, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (n_rows, 1))
    return part, np.take_along_axis(s, part, axis=1)


def _threshold_select(s: np.ndarray, k: int, groups: int, size: int, mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row of ``s``, exactly, looking at few cells past one comparison pass.

    The first ``groups * size`` columns are a random sample of the items (the caller permutes them), cut
    into ``groups`` runs of ``size``. The k-th largest of the runs' maxima is a lower bound of the row's k-th
    largest score (k distinct items reach it), so every top-k item scores at least that threshold. Only the
    cells at or above it (about ``k * n / groups / size`` per row, times a small factor) are gathered and
    partially sorted. Rows whose threshold is -inf (excluded items in the sample) or that keep too many
    candidates fall back to :func:`_full_select`. ``mask`` is a reusable boolean buffer of ``s``'s shape.
    """
    n_rows, n = s.shape
    maxima = s[:, :groups * size].reshape(n_rows, groups, size).max(axis=2)
    thr = np.partition(maxima, groups - k, axis=1)[:, groups - k]
    np.greater_equal(s, thr[:, None], out=mask)
    flat = np.flatnonzero(mask)
    r, c = np.divmod(flat, n)
    counts = np.bincount(r, minlength=n_rows)
    bad = ~np.isfinite(thr) | (counts > max(n // 8, 4 * k))
    if bad.any():
        keep = ~bad[r]
        r, c = r[keep], c[keep]
        counts[bad] = 0
    part = np.zeros((n_rows, k), dtype=np.int64)
    vals = np.full((n_rows, k), -np.inf, dtype=s.dtype)
    if len(r):
        width = int(counts.max())
        starts = np.cumsum(counts) - counts
        pos = np.arange(len(r)) - starts[r]
        pad_s = np.full((n_rows, width), -np.inf, dtype=s.dtype)
        pad_i = np.zeros((n_rows, width), dtype=np.int64)
        pad_s[r, pos] = s[r, c]
        pad_i[r, pos] = c
        top = np.argpartition(-pad_s, k - 1, axis=1)[:, :k] if k < width else np.arange(k)[None, :].repeat(n_rows, 0)
        part = np.take_along_axis(pad_i, top, axis=1)
        vals = np.take_along_axis(pad_s, top, axis=1)
    if bad.any():
        part[bad], vals[bad] = _full_select(s[bad], k)
    return part, vals


_SAMPLE_GROUPS = 64  # threshold: k-th largest of the maxima of 64 runs of a random sample of the items
_SAMPLE_COLUMNS = 8192  # sample size (at most a quarter of the catalogue)
_THREADS = None  # worker threads for top_k blocks (None: os.cpu_count())


def top_k(user_vecs: np.ndarray, item_vecs: np.ndarray, k: int, *, users: np.ndarray | None = None,
          exclude: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k items by dot product for each user (maximum inner product search by brute force).

    Users are scored in blocks (one float32 GEMM each into a reused buffer of about 64 MiB); blocks run on
    all cores (one BLAS thread per worker). In catalogues of >= 2,048 items (k <= n_items / 128) the k-th
    largest of the maxima of 64 runs of a fixed random sample of up to 8,192 items is a lower bound of each
    row's k-th largest score (k distinct items reach it), so only the items at or above it are partially sorted: selection costs one comparison pass over the scores
    instead of an ``argpartition`` of every row (see ``recsys-lab bench`` for the ratio to the bare GEMM).
    Results are exact: the bound never drops a top-k item.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32
    k : int
        Number of items per user (capped at n_items).
    users : ndarray of int64, shape (n,), optional
        Internal user indices to score (default: all).
    exclude : csr_matrix of shape (n_users, n_items), optional
        Nonzeros are never recommended (e.g. items seen in training).

    Returns
    -------
    items : ndarray of shape (n, k), int64
        Internal item indices, best first; equal scores in item order. Where fewer than k items remain after
        exclusion, the tail holds excluded items with score -inf.
    scores : ndarray of shape (n, k), float32
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    users = np.arange(len(user_vecs)) if users is None else np.asarray(users, dtype=np.int64)
    n_items = len(item_vecs)
    k = min(k, n_items)
    out_i = np.empty((len(users), k), dtype=np.int64)
    out_s = np.empty((len(users), k), dtype=np.float32)
    if len(users) == 0 or k == 0:
        return out_i, out_s
    item_t = np.asarray(item_vecs, dtype=np.float32).T
    perm = None
    groups = max(_SAMPLE_GROUPS, 4 * k)
    size = min(_SAMPLE_COLUMNS, n_items // 4) // groups
    if size >= 8:
        # a fixed random order of the items: the first _SAMPLE_COLUMNS columns are the threshold sample
        perm = np.random.default_rng(0).permutation(n_items)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n_items)
        item_t = item_t[:, perm]
    item_t = np.ascontiguousarray(item_t)
    blocks = list(_batches(len(users), n_items))
    threads = max(1, min(_THREADS or os.cpu_count() or 1, len(blocks)))

    def work(mine: list[tuple[int, int]]) -> None:
        step = max(hi - lo for lo, hi in mine)
        buf = np.empty((step, n_items), dtype=np.float32)
        mask = np.empty((step, n_items), dtype=bool) if perm is not None else None
        for lo, hi in mine:
            s = np.matmul(user_vecs[users[lo:hi]].astype(np.float32, copy=False), item_t, out=buf[:hi - lo])
            if exclude is not None:
                sub = exclude[users[lo:hi]]
                rows = np.repeat(np.arange(hi - lo), np.diff(sub.indptr))
                s[rows, sub.indices if perm is None else inv[sub.indices]] = -np.inf
            if perm is None:
                part, vals = _full_select(s, k)
            else:
                part, vals = _threshold_select(s, k, groups, size, mask[:hi - lo])
                part = perm[part]
            order = np.lexsort((part, -vals), axis=1)  # best first; equal scores by item index
            out_i[lo:hi] = np.take_along_axis(part, order, axis=1)
            out_s[lo:hi] = np.take_along_axis(vals, order, axis=1)

    if threads == 1:
        work(blocks)
    else:
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, [blocks[t::threads] for t in range(threads)]))  # re-raises a worker's error
    return out_i, out_s


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
