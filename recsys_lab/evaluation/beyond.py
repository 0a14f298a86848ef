"""Beyond accuracy of top-k lists (novelty, diversity, popularity bias, coverage): arrays in, numbers out.

Fairness (exposure and accuracy per group) is :mod:`recsys_lab.evaluation.fairness`.

Every function takes recommendation lists as an int array of internal item indices of shape (n_users, k)
(``-1`` pads a short list and is ignored) and returns plain floats or dicts of floats, so the same code scores
the model, the baselines and production. Categories are a boolean membership matrix of shape
(n_items, n_categories) (an item may belong to several, as MovieLens genres; see :func:`membership`).

Definitions and their sources are in each docstring. Peers with the same families: Elliot
(``elliot/evaluation/metrics/``: novelty, diversity, ARP/APLT, Gini) and RecTools (``rectools/metrics/``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recsys_lab.evaluation import keys

__all__ = ["membership", "novelty", "intra_list_diversity", "category_diversity", "average_popularity",
           "long_tail_items", "long_tail_share", "exposure", "gini", "exposure_gini", "catalog_coverage",
           "beyond_accuracy"]


def _lists(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    items = np.asarray(items, dtype=np.int64)
    if items.ndim != 2:
        raise ValueError(f"recommendation lists must be 2-D (n_users, k), got shape {items.shape}")
    return items, items >= 0


def membership(labels: Sequence, categories: Sequence | None = None) -> tuple[np.ndarray, list]:
    """Boolean item x category matrix from one label (or a list of labels, or None) per item.

    Parameters
    ----------
    labels : sequence of length n_items
        Per item: a label, a list of labels (multi-label, e.g. genres) or None (unknown: an all-False row).
    categories : sequence, optional
        Column order (default: sorted distinct labels).

    Returns
    -------
    matrix : ndarray of shape (n_items, n_categories), bool
    categories : list
        The label of each column.
    """
    rows = [[] if x is None else list(x) if isinstance(x, (list, tuple, np.ndarray)) else [x] for x in labels]
    cats = sorted({c for r in rows for c in r if c is not None}, key=str) if categories is None else list(categories)
    col = {c: j for j, c in enumerate(cats)}
    m = np.zeros((len(rows), len(cats)), dtype=bool)
    for i, r in enumerate(rows):
        for c in r:
            if c in col:
                m[i, col[c]] = True
    return m, cats


def novelty(items: np.ndarray, popularity: np.ndarray, n_users: int) -> float:
    """Mean self-information of the recommended items, in bits.

    ``novelty = mean over slots of -log2 p(i)``, ``p(i) = popularity(i) / n_users``: the share of training users
    who interacted with ``i`` (Zhou et al., "Solving the apparent diversity-accuracy dilemma of recommender
    systems", PNAS 2010; Vargas & Castells, "Rank and relevance in novelty and diversity metrics for
    recommender systems", RecSys 2011, popularity-based novelty without rank discount). Items nobody interacted
    with count as one user (``p = 1 / n_users``) so the value stays finite.

    Parameters
    ----------
    items : ndarray of shape (n_users_rec, k), int
    popularity : ndarray of shape (n_items,)
        Training users (or interactions) per item.
    n_users : int
        Training users (the denominator of ``p``).

    Returns
    -------
    float
        Bits; NaN when no slot is filled. Higher is less popular.
    """
    items, ok = _lists(items)
    if not ok.any():
        return float("nan")
    p = np.maximum(np.asarray(popularity, dtype=np.float64), 1.0) / max(n_users, 1)
    return float(np.mean(-np.log2(np.minimum(p[items[ok]], 1.0))))


def _pair_mean(items: np.ndarray, ok: np.ndarray, vectors: np.ndarray, distance) -> float:  # noqa: ANN001
    """Mean over lists of the mean pairwise ``distance(gram)`` of the list's items, where ``gram`` is the
    (m, L, L) stack of ``vectors[r] @ vectors[r].T``; lists of equal length are done in batches of 4,096."""
    lengths = ok.sum(axis=1)
    per_user = []
    for length in np.unique(lengths[lengths >= 2]):
        rows = np.flatnonzero(lengths == length)
        iu = np.triu_indices(int(length), 1)
        for lo in range(0, len(rows), 4096):
            block = rows[lo:lo + 4096]
            r = items[block][ok[block]].reshape(len(block), int(length))
            v = vectors[r]
            d = distance(np.matmul(v, v.transpose(0, 2, 1)))
            per_user.append(d[:, iu[0], iu[1]].mean(axis=1))
    return float(np.concatenate(per_user).mean()) if per_user else float("nan")


def intra_list_diversity(items: np.ndarray, item_vecs: np.ndarray) -> float:
    """Intra-list diversity by embedding: mean pairwise cosine distance ``1 - cos(x_i, x_j)`` within each list,
    averaged over lists (Ziegler et al., "Improving recommendation lists through topic diversification",
    WWW 2005; Smyth & McClave, "Similarity vs. diversity", ICCBR 2001).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
    item_vecs : ndarray of shape (n_items, d), float
        Item embeddings (without the bias column for LightFM: pass ``item_vecs[:, :-1]``).

    Returns
    -------
    float
        In [0, 2]; NaN when no list has two items. Zero-norm vectors have distance 1 to everything.
    """
    items, ok = _lists(items)
    x = np.asarray(item_vecs, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return _pair_mean(items, ok, unit, lambda gram: 1.0 - gram)


def category_diversity(items: np.ndarray, categories: np.ndarray) -> float:
    """Intra-list diversity by category: share of pairs within a list that share no category, averaged over
    lists (the category-based ILD of Ziegler et al., WWW 2005, with a 0/1 distance).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
    categories : ndarray of shape (n_items, n_categories), bool
        See :func:`membership`.

    Returns
    -------
    float
        In [0, 1]; NaN when no list has two items.
    """
    items, ok = _lists(items)
    c = np.asarray(categories, dtype=np.float64)
    return _pair_mean(items, ok, c, lambda gram: (gram == 0).astype(np.float64))


def average_popularity(items: np.ndarray, popularity: np.ndarray) -> float:
    """Average recommended popularity (ARP): mean over lists of the mean training popularity of the list's items
    (Abdollahpouri, Burke & Mobasher, "Managing popularity bias in recommender systems with personalized
    re-ranking", FLAIRS 2019).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
        Recommendation lists of internal item indices; negative entries are empty slots.
    popularity : ndarray of shape (n_items,)
        Training popularity of each item (users per item).

    Returns
    -------
    float
        In the unit of ``popularity`` (users per item); NaN when no slot is filled.

    Raises
    ------
    ValueError
        ``items`` is not 2-D.
    """
    items, ok = _lists(items)
    pop = np.asarray(popularity, dtype=np.float64)
    filled = ok.sum(axis=1)
    if not filled.any():
        return float("nan")
    sums = np.where(ok, pop[np.where(ok, items, 0)], 0.0).sum(axis=1)
    return float(np.mean(sums[filled > 0] / filled[filled > 0]))


def long_tail_items(popularity: np.ndarray, head_share: float = 0.8) -> np.ndarray:
    """The long tail: items outside the short head, the most popular items that together account for
    ``head_share`` of training interactions (Abdollahpouri et al., "Controlling popularity bias in
    learning-to-rank recommendation", RecSys 2017; Elliot's default ``0.8``).

    Parameters
    ----------
    popularity : ndarray of shape (n_items,)
        Training interactions per item (non-negative).
    head_share : float
        Share of the interactions held by the short head, in (0, 1] (default 0.8).

    Returns
    -------
    ndarray of shape (n_items,), bool
        True for long-tail items.

    Raises
    ------
    ValueError
        ``head_share`` outside (0, 1].
    """
    if not 0 < head_share <= 1:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")
    pop = np.asarray(popularity, dtype=np.float64)
    order = np.argsort(-pop, kind="stable")
    total = pop.sum()
    tail = np.ones(len(pop), dtype=bool)
    if total <= 0:
        return tail
    cum = np.cumsum(pop[order]) / total
    n_head = int(np.searchsorted(cum, head_share - 1e-12) + 1)
    tail[order[:n_head]] = False
    return tail


def long_tail_share(items: np.ndarray, tail: np.ndarray) -> float:
    """Average percentage of long-tail items (APLT): mean over lists of the share of the list's items in the
    long tail (Abdollahpouri et al., RecSys 2017 / FLAIRS 2019).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
    tail : ndarray of shape (n_items,), bool
        See :func:`long_tail_items`.

    Returns
    -------
    float
        In [0, 1]; negative entries of ``items`` are empty slots and not counted; NaN when no slot is filled.

    Raises
    ------
    ValueError
        ``items`` is not 2-D.
    """
    items, ok = _lists(items)
    filled = ok.sum(axis=1)
    if not filled.any():
        return float("nan")
    hits = (np.asarray(tail, dtype=bool)[np.where(ok, items, 0)] & ok).sum(axis=1)
    return float(np.mean(hits[filled > 0] / filled[filled > 0]))


def exposure(items: np.ndarray, n_items: int) -> np.ndarray:
    """Times each item appears in the lists: ndarray of shape (n_items,), int64.

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
        Recommendation lists; negative entries are empty slots and not counted.
    n_items : int
        Catalogue size (length of the result).

    Returns
    -------
    ndarray of shape (n_items,), int64

    Raises
    ------
    ValueError
        ``items`` is not 2-D.
    """
    items, ok = _lists(items)
    return np.bincount(items[ok], minlength=n_items).astype(np.int64)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 when equal, ``1 - 1/n`` when one holds everything.

    ``G = sum_i (2 i - n - 1) x_(i) / (n sum x)`` over values sorted ascending, i = 1..n (the formula of
    Elliot's ``Gini`` and of Fleder & Hosanagar's sales-diversity Gini). NaN for an empty or all-zero input.

    Parameters
    ----------
    values : ndarray of shape (n,)
        Non-negative values (e.g. exposure counts).

    Returns
    -------
    float
        In [0, 1 - 1/n].
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = len(x), x.sum()
    if n == 0 or total <= 0:
        return float("nan")
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * x) / (n * total))


def exposure_gini(items: np.ndarray, n_items: int) -> float:
    """Gini of item exposure counts over the whole catalogue, items never recommended included
    (Fleder & Hosanagar, "Blockbuster culture's next rise or fall", Management Science 2009; Elliot ``Gini``).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
        Recommendation lists; negative entries are empty slots.
    n_items : int
        Catalogue size.

    Returns
    -------
    float
        Gini in [0, 1 - 1/n_items]; NaN when nothing is recommended.

    Raises
    ------
    ValueError
        ``items`` is not 2-D.
    """
    return gini(exposure(items, n_items))


def catalog_coverage(items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue recommended at least once (Herlocker et al., "Evaluating collaborative filtering
    recommender systems", TOIS 2004; Ge et al., RecSys 2010).

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
        Recommendation lists; negative entries are empty slots.
    n_items : int
        Catalogue size.

    Returns
    -------
    float
        In [0, 1].

    Raises
    ------
    ValueError
        ``items`` is not 2-D.
    """
    return float((exposure(items, n_items) > 0).sum() / max(n_items, 1))


def beyond_accuracy(items: np.ndarray, *, popularity: np.ndarray, n_users: int, item_vecs: np.ndarray | None = None,
                    categories: np.ndarray | None = None, k: int = 10, head_share: float = 0.8) -> dict[str, float]:
    """Every beyond-accuracy figure of one set of lists, with the keys used in ``metrics.json``.

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
    popularity : ndarray of shape (n_items,)
        Training users per item.
    n_users : int
        Training users.
    item_vecs : ndarray of shape (n_items, d), optional
        Embeddings for the embedding ILD (skipped when None).
    categories : ndarray of shape (n_items, n_categories), bool, optional
        For the category ILD (skipped when None).
    k : int
        Cut-off named in the keys.

    Returns
    -------
    dict
        ``novelty@k, ild@k, ild.category@k, arp@k, aplt@k, gini@k, coverage@k``.
    """
    n_items = len(popularity)
    out = {keys.at("novelty", k): novelty(items, popularity, n_users),
           keys.at("arp", k): average_popularity(items, popularity),
           keys.at("aplt", k): long_tail_share(items, long_tail_items(popularity, head_share)),
           keys.at("gini", k): exposure_gini(items, n_items),
           keys.at("coverage", k): catalog_coverage(items, n_items)}
    if item_vecs is not None:
        out[keys.at("ild", k)] = intra_list_diversity(items, item_vecs)
    if categories is not None:
        out[keys.at("ild.category", k)] = category_diversity(items, categories)
    return out
