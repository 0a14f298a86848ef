"""Embedding quality: intrinsic (neighbour coherence, stability between runs) and extrinsic (linear probes).

Arrays in, numbers out: neighbours come from the caller (``neighbours.similar_items`` or :func:`cosine_neighbours`),
categories are boolean membership matrices (:func:`recsys_lab.evaluation.beyond.membership`). An embedding cannot be judged
by looking at it; it is judged by whether nearby items are alike (coherence against chance), whether it stays put
between retrains (stability), and whether simple downstream models can read known attributes from it (probes:
Alain & Bengio, "Understanding intermediate layers using linear classifier probes", 2016; the extrinsic
evaluation of word embeddings, Schnabel et al., EMNLP 2015).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from recsys_lab.retrieval.topk import top_k

__all__ = ["project_2d", "cosine_neighbours", "inner_product_neighbours", "coherence", "jaccard_overlap", "probe", "multilabel_probe"]


def project_2d(vecs: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """2-D projection of embeddings by PCA (scikit-learn), for plots.

    Parameters
    ----------
    vecs : ndarray of shape (n, d), float

    Returns
    -------
    ndarray of shape (n, 2), float64
        The first two principal components.
    """
    from sklearn.decomposition import PCA

    return PCA(n_components=2, random_state=seed).fit_transform(np.asarray(vecs, dtype=np.float64))


def _without_self(queries: np.ndarray, x: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries @ x.T`` with each query's own row ``rows[r]`` excluded (:func:`topk.top_k`)."""
    exclude = sp.csr_matrix((np.ones(len(rows), np.float32), rows, np.arange(len(rows) + 1)),
                            shape=(len(rows), len(x)))
    return top_k(queries, x, k, exclude=exclude)


def _query_items(n: int, items: np.ndarray | None) -> np.ndarray:
    items = np.arange(n) if items is None else np.asarray(items, dtype=np.int64).reshape(-1)
    if len(items) and (items.min() < 0 or items.max() >= n):
        raise IndexError(f"item index out of range [0, {n}): {items[(items < 0) | (items >= n)][0]}")
    return items


def cosine_neighbours(vecs: np.ndarray, k: int = 10, items: np.ndarray | None = None) -> np.ndarray:
    """Exact ``k`` nearest neighbours by cosine similarity, the row itself excluded.

    Parameters
    ----------
    vecs : ndarray of shape (n, d), float
    k : int
        Capped at ``n - 1``.
    items : ndarray of shape (m,), int, optional
        Query rows (default all); neighbours are searched among all ``n`` rows.

    Returns
    -------
    ndarray of shape (m, k), int64
        Row indices, most similar first (ties in index order); ``-1`` for a query row whose vector is zero (e.g.
        an item no baseline saw in training), which :func:`coherence` ignores.

    Raises
    ------
    IndexError
        A query row outside ``[0, n)``.
    """
    x = np.asarray(vecs, dtype=np.float32)
    rows = _query_items(len(x), items)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    k = max(min(k, len(x) - 1), 0)
    out = np.full((len(rows), k), -1, dtype=np.int64)
    live = np.flatnonzero(norms[rows, 0] > 0)  # a zero vector has no direction, hence no neighbours
    out[live] = _without_self(unit[rows[live]], unit, rows[live], k)[0]
    return out


def inner_product_neighbours(item_vecs: np.ndarray, items: np.ndarray | None = None, k: int = 10, *,
                             bias_column: int | None = -1) -> tuple[np.ndarray, np.ndarray]:
    """Exact item-to-item neighbours by inner product, the item itself excluded: the similarity of
    :func:`recsys_lab.retrieval.neighbours.similar_items` computed exhaustively (for catalogues where exact search is cheaper
    than an index).

    With ``bias_column`` (default -1, LightFM's folded item ``[e_j, b_j]``) the query for item ``i`` is
    ``[e_i, 1]``: ``sim(i, j) = e_i · e_j + b_j``, the score LightFM gives ``j`` for a user whose
    representation equals ``i``'s embedding (asymmetric, popularity-aware). ``None``: ``sim(i, j) = x_i · x_j``.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d), float
    items : ndarray of shape (n,), int, optional
        Query items (internal indices; default all).
    k : int
        Capped at ``n_items - 1``.

    Returns
    -------
    neighbours : ndarray of shape (n, k), int64
    scores : ndarray of shape (n, k), float32
        Most similar first (ties in index order; which of several items tied at the k-th score are kept is
        unspecified).

    Raises
    ------
    IndexError
        An item index outside ``[0, n_items)``.
    """
    x = np.asarray(item_vecs, dtype=np.float32)
    items = _query_items(len(x), items)
    q = x[items].copy()
    if bias_column is not None:
        q[:, bias_column] = 1.0
    return _without_self(q, x, items, max(min(k, len(x) - 1), 0))


def coherence(neighbours: np.ndarray, categories: np.ndarray, items: np.ndarray | None = None
              ) -> tuple[float, float]:
    """Neighbour coherence: share of each item's neighbours sharing at least one category with it, averaged over
    items with a category, against the share expected by chance (a random other item shares one).

    Parameters
    ----------
    neighbours : ndarray of shape (n, k), int
        Each query item's neighbours (internal indices; ``-1`` ignored).
    categories : ndarray of shape (n_items, n_categories), bool
    items : ndarray of shape (n,), int, optional
        The query items of ``neighbours``' rows (default all items, ``n = n_items``): coherence of a seeded
        sample of a large catalogue.

    Returns
    -------
    coherence, chance : float
        Both in [0, 1]; NaN when no item has a category. ``chance`` is, per item, the share of the other
        categorised items that share a category with it, averaged over the same items.
    """
    c = np.asarray(categories, dtype=np.float32)
    nb = np.asarray(neighbours, dtype=np.int64)
    items = np.arange(len(c)) if items is None else np.asarray(items, dtype=np.int64)
    has = c.sum(axis=1) > 0
    if not has[items].any():
        return float("nan"), float("nan")
    sel = np.flatnonzero(has[items])
    rows = items[sel]
    ok = (nb[sel] >= 0) & has[np.where(nb[sel] >= 0, nb[sel], 0)]
    shared = (c[rows][:, None, :] * c[np.where(ok, nb[sel], 0)]).sum(axis=2) > 0
    per_item = np.where(ok, shared, False).sum(axis=1) / np.maximum(ok.sum(axis=1), 1)
    # items sharing a category with each row, counted over the distinct category patterns (few, even when
    # items are many): pattern p shares with pattern q when they have a category in common
    patterns, inverse, counts = np.unique(c[has] > 0, axis=0, return_inverse=True, return_counts=True)
    pf = patterns.astype(np.float32)
    per_pattern = ((pf @ pf.T) > 0).astype(np.float64) @ counts
    pattern_of = np.full(len(c), -1, dtype=np.int64)
    pattern_of[np.flatnonzero(has)] = inverse.reshape(-1)
    share_with = per_pattern[pattern_of[rows]] - 1  # minus the item itself
    chance = share_with / max(has.sum() - 1, 1)
    keep = ok.sum(axis=1) > 0
    return float(per_item[keep].mean()) if keep.any() else float("nan"), float(chance[keep].mean()) if keep.any() \
        else float("nan")


def jaccard_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Jaccard overlap ``|A ∩ B| / |A ∪ B|`` of two sets of lists (``-1`` padding ignored).

    Parameters
    ----------
    a, b : ndarray of shape (n, k_a), (n, k_b), int
        Lists in a shared id space (external ids, or indices mapped by :func:`recsys_lab.features.align`), row for row.

    Returns
    -------
    ndarray of shape (n,), float64
        NaN where both rows are empty.

    Raises
    ------
    ValueError
        Different numbers of rows.
    """
    a, b = np.asarray(a), np.asarray(b)
    if len(a) != len(b):
        raise ValueError(f"jaccard_overlap needs the same rows: {len(a)} and {len(b)}")
    out = np.full(len(a), np.nan)
    for r in range(len(a)):
        x, y = set(a[r][a[r] != -1].tolist()), set(b[r][b[r] != -1].tolist())
        if x or y:
            out[r] = len(x & y) / len(x | y)
    return out


def _cv(n_splits: int, seed: int):  # noqa: ANN202
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)


def probe(x: np.ndarray, labels: np.ndarray, *, n_splits: int = 5, seed: int = 0, min_class: int | None = None
          ) -> dict[str, float]:
    """Linear probe: cross-validated AUC of a logistic regression reading ``labels`` from frozen vectors ``x``,
    against a majority baseline.

    Standardised features, ``LogisticRegression`` (scikit-learn; ``liblinear`` for two classes, 4x faster than
    ``lbfgs`` on ML-100k-sized probes at the same AUC, ``lbfgs`` with ``max_iter=200`` for more), stratified ``n_splits``-fold
    cross-validation; AUC is binary ROC AUC for two classes and macro one-vs-rest for more
    (``roc_auc_ovr``). The majority baseline (``DummyClassifier("prior")``) always scores AUC 0.5; its accuracy
    (the majority share) is reported next to the probe's accuracy.

    Parameters
    ----------
    x : ndarray of shape (n, d), float
    labels : ndarray of shape (n,)
        Class per row; None / NaN rows are dropped, and classes with fewer than ``min_class`` rows
        (default ``n_splits``) are dropped (they cannot be stratified).
    n_splits, seed : int

    Returns
    -------
    dict
        ``auc, auc.baseline, accuracy, accuracy.baseline, n, n_classes``; ``auc`` NaN when fewer than two
        classes remain.
    """
    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels, dtype=object)
    keep = np.array([v is not None and v == v for v in y], dtype=bool)
    values, counts = np.unique(y[keep].astype(str), return_counts=True)
    big = set(values[counts >= (min_class or n_splits)])
    keep &= np.array([str(v) in big for v in y], dtype=bool)
    xs, ys = np.asarray(x, dtype=np.float64)[keep], y[keep].astype(str)
    n_classes = len(set(ys))
    out = {"n": int(len(ys)), "n_classes": n_classes}
    if n_classes < 2:
        return {**out, "auc": float("nan"), "auc.baseline": float("nan"), "accuracy": float("nan"),
                "accuracy.baseline": float("nan")}
    scoring = {"auc": "roc_auc" if n_classes == 2 else "roc_auc_ovr", "accuracy": "accuracy"}
    cv = _cv(n_splits, seed)
    from threadpoolctl import threadpool_limits

    # one BLAS thread: these small problems spend their time in thread hand-offs otherwise (a 21-class probe on
    # 848 x 128 vectors, 5 folds: 15.5 s with the default threads on a busy 2-core machine, 0.63 s with one)
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore")  # convergence notes on near-separable folds
        clf = LogisticRegression(solver="liblinear") if n_classes == 2 else LogisticRegression(max_iter=200)
        model = cross_validate(make_pipeline(StandardScaler(), clf), xs, ys, cv=cv,
                               scoring=scoring)
        base = cross_validate(DummyClassifier(strategy="prior"), xs, ys, cv=cv, scoring=scoring)
    return {**out, "auc": float(model["test_auc"].mean()), "auc.baseline": float(base["test_auc"].mean()),
            "accuracy": float(model["test_accuracy"].mean()),
            "accuracy.baseline": float(base["test_accuracy"].mean())}


def multilabel_probe(x: np.ndarray, categories: np.ndarray, names: list, *, n_splits: int = 5, seed: int = 0,
                     min_positives: int = 20) -> dict[str, float]:
    """One binary :func:`probe` per category (member or not), for multi-label categories such as genres.

    Parameters
    ----------
    x : ndarray of shape (n_items, d), float
    categories : ndarray of shape (n_items, n_categories), bool
        Rows without any category are left out.
    names : list of length n_categories
    min_positives : int
        Categories with fewer members (or non-members) are skipped.

    Returns
    -------
    dict
        ``auc`` and ``auc.baseline`` (macro means over probed categories), ``n_categories``, and
        ``auc.<name>`` per probed category.
    """
    c = np.asarray(categories, dtype=bool)
    rows = c.any(axis=1)
    out: dict[str, float] = {}
    aucs = []
    for j, name in enumerate(names):
        y = c[rows, j]
        if min(y.sum(), (~y).sum()) < min_positives:
            continue
        r = probe(np.asarray(x)[rows], y, n_splits=n_splits, seed=seed)
        out[f"auc.{name}"] = r["auc"]
        aucs.append(r["auc"])
    out.update({"auc": float(np.mean(aucs)) if aucs else float("nan"), "auc.baseline": 0.5 if aucs else float("nan"),
                "n_categories": len(aucs)})
    return out
