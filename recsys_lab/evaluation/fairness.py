"""Fairness of top-k lists: item groups' exposure and user groups' accuracy, and the group labels they need.

Item groups come from an item column (``eval.item_category``, e.g. MovieLens genres; multi-label), user groups
from user columns (``eval.user_groups``; numeric columns in quantile buckets). :func:`fairness_figures` gives one
model's ``fairness.*`` keys. Arrays and frames in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import numpy as np
import polars as pl

from recsys_lab.evaluation import keys
from recsys_lab.evaluation.beyond import exposure, membership
from recsys_lab.evaluation.intervals import bootstrap_ci

__all__ = ["item_categories", "user_labels", "group_exposure", "group_ndcg", "fairness_figures"]


def item_categories(items: pl.DataFrame, column: str, to_index: Callable, n_items: int
                    ) -> tuple[np.ndarray | None, list]:
    """The item table's ``column`` as a membership matrix in index order (:func:`recsys_lab.evaluation.beyond.membership`).

    Parameters
    ----------
    items : pl.DataFrame
        The snapshot's item table (``item_id`` and ``column``).
    column : str
        ``eval.item_category``.
    to_index : callable
        External item ids -> internal indices (``Dataset.items.to_index``).
    n_items : int
        Catalogue size.

    Returns
    -------
    categories : ndarray of shape (n_items, n_categories), bool, or None
        None when the table has no such column.
    names : list
        Category names, one per column.
    """
    if column not in items.columns:
        return None, []
    labels = [None] * n_items
    for item_id, value in zip(items["item_id"].to_list(), items[column].to_list()):
        labels[int(to_index(item_id))] = value
    return membership(labels)


def user_labels(users: pl.DataFrame, column: str, to_index: Callable, n_users: int) -> np.ndarray | None:
    """One label per user in index order (None when unknown); numeric columns with more than 10 values in
    quantile buckets (``"18-25"``).

    Parameters
    ----------
    users : pl.DataFrame
        The snapshot's user table (``user_id`` and ``column``).
    column : str
    to_index : callable
        External user ids -> internal indices (``Dataset.users.to_index``).
    n_users : int

    Returns
    -------
    ndarray of shape (n_users,), object, or None
        None when the table has no such column (or it is ``user_id``).
    """
    if column not in users.columns or column == "user_id":
        return None
    values = users[column]
    if values.dtype.is_numeric() and values.n_unique() > 10:
        edges = np.unique(np.nanquantile(values.to_numpy().astype(np.float64), [0.2, 0.4, 0.6, 0.8]))
        bucket = np.searchsorted(edges, values.to_numpy(), side="right")
        bounds = np.r_[values.min(), edges, values.max()]
        text = [f"{bounds[b]:g}-{bounds[b + 1]:g}" if v is not None else None
                for b, v in zip(bucket, values.to_list())]
    else:
        text = [None if v is None else str(v) for v in values.to_list()]
    labels = np.full(n_users, None, dtype=object)
    labels[to_index(users["user_id"].to_numpy())] = text
    return labels


def group_exposure(items: np.ndarray, groups: np.ndarray, names: Sequence, *, interactions: np.ndarray | None = None
                   ) -> dict[str, dict[str, float]]:
    """Item-side fairness: each group's share of recommendation slots against its share of the catalogue and of
    training interactions (exposure vs. "merit", after Singh & Joachims, "Fairness of exposure in rankings",
    KDD 2018; the popularity-calibrated comparison of Abdollahpouri et al., UMAP 2020).

    Shares are of slots (or items, or interactions) whose item belongs to the group; with multi-label groups
    (an item in several genres) they sum to more than 1.

    Parameters
    ----------
    items : ndarray of shape (n_users, k), int
    groups : ndarray of shape (n_items, n_groups), bool
    names : sequence of length n_groups
    interactions : ndarray of shape (n_items,), optional
        Training interactions per item.

    Returns
    -------
    dict
        ``{name: {"exposure", "catalog", "interactions", "ratio"}}``; ``ratio = exposure / interactions`` (or
        ``/ catalog`` without interactions): < 1 the group is recommended less than it is consumed.
    """
    g = np.asarray(groups, dtype=np.float64)
    expo = exposure(items, g.shape[0]).astype(np.float64)
    slots = max(expo.sum(), 1.0)
    cat = g.mean(axis=0)
    exp_share = (expo @ g) / slots
    inter_share = None
    if interactions is not None:
        inter = np.asarray(interactions, dtype=np.float64)
        inter_share = (inter @ g) / max(inter.sum(), 1.0)
    out = {}
    for j, name in enumerate(names):
        ref = inter_share[j] if inter_share is not None else cat[j]
        out[str(name)] = {"exposure": float(exp_share[j]), "catalog": float(cat[j]),
                          "interactions": float(inter_share[j]) if inter_share is not None else float("nan"),
                          "ratio": float(exp_share[j] / ref) if ref > 0 else float("nan")}
    return out


def group_ndcg(values: np.ndarray, groups: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
               min_users: int = 2) -> tuple[dict[str, dict[str, float]], float]:
    """User-side fairness: the mean of a per-user metric (e.g. NDCG@k) per user group with its 95 % bootstrap
    interval (:func:`recsys_lab.evaluation.intervals.bootstrap_ci`), and the largest gap between group means (the
    user-group accuracy disparity of Ekstrand et al., "All the cool kids, how do they fit in?", FAT* 2018).

    Parameters
    ----------
    values : ndarray of shape (n_users,), float
        Per-user metric (NaN rows ignored).
    groups : ndarray of shape (n_users,)
        Group label of each user (None or NaN-like labels are left out).
    min_users : int
        Groups with fewer users are reported but left out of the gap.

    Returns
    -------
    per_group : dict
        ``{label: {"mean", "ci_low", "ci_high", "n_users"}}``.
    gap : float
        ``max - min`` of the group means over groups with at least ``min_users`` users (NaN with fewer than 2).
    """
    v = np.asarray(values, dtype=np.float64)
    labels = np.asarray(groups, dtype=object)
    per_group: dict[str, dict[str, float]] = {}
    for label in sorted({x for x in labels if x is not None and x == x}, key=str):
        x = v[(labels == label) & ~np.isnan(v)]
        lo, hi = bootstrap_ci(x, n_resamples=n_resamples, seed=seed) if len(x) >= 2 else (np.nan, np.nan)
        per_group[str(label)] = {"mean": float(x.mean()) if len(x) else float("nan"), "ci_low": float(lo),
                                 "ci_high": float(hi), "n_users": int(len(x))}
    means = [g["mean"] for g in per_group.values() if g["n_users"] >= min_users]
    gap = float(max(means) - min(means)) if len(means) >= 2 else float("nan")
    return per_group, gap


def fairness_figures(lists: np.ndarray, ndcg: np.ndarray, *, k: int, categories: np.ndarray | None = None,
                     category_names: Sequence = (), category_column: str = "", interactions: np.ndarray | None = None,
                     user_groups: dict[str, np.ndarray | None] | None = None, n_resamples: int = 1000, seed: int = 0,
                     details: dict | None = None) -> dict[str, float]:
    """One model's fairness keys: item exposure per category and NDCG@k per user group.

    Parameters
    ----------
    lists : ndarray of shape (n_users, k), int
        The model's top-k lists of the evaluation users.
    ndcg : ndarray of shape (n_users,)
        Its per-user NDCG@k on the same users.
    k : int
    categories, category_names, category_column
        Item membership matrix (None: item side skipped), its names and the column it came from.
    interactions : ndarray of shape (n_items,), optional
        Training interactions per item.
    user_groups : dict of str to ndarray or None
        Per user column, the labels of the evaluation users (None: skipped).
    n_resamples, seed : int
        Bootstrap of the group intervals.
    details : dict, optional
        Filled with ``item_exposure`` (the shares) and ``user_groups`` (per column, the groups) for the report.

    Returns
    -------
    dict of str to float
        ``fairness.item.<c>.exposure_gap`` (largest |exposure share - interaction share|), with ``details`` also
        ``fairness.item.<c>.<group>.exposure|catalog|interactions|ratio``; ``fairness.user.<g>.ndcg@k.<group>``
        with ``.ci_low``, ``.ci_high``, ``.n_users`` and ``fairness.user.<g>.ndcg@k.gap``.
    """
    out: dict[str, float] = {}
    if categories is not None:
        shares = group_exposure(lists, categories, category_names, interactions=interactions)
        out[f"fairness.item.{category_column}.exposure_gap"] = max(
            abs(v["exposure"] - v["interactions"]) for v in shares.values())
        if details is not None:
            details["item_exposure"] = shares
            for group, v in shares.items():
                out.update({f"fairness.item.{category_column}.{group}.{key}": value for key, value in v.items()})
    for g, labels in (user_groups or {}).items():
        if labels is None:
            continue
        per, gap = group_ndcg(ndcg, labels, n_resamples=n_resamples, seed=seed)
        base = f"fairness.user.{g}.{keys.at('ndcg', k)}"
        for group, v in per.items():
            low, high = keys.ci(f"{base}.{group}")
            out.update({f"{base}.{group}": v["mean"], low: v["ci_low"], high: v["ci_high"],
                        f"{base}.{group}.n_users": v["n_users"]})
        out[f"{base}.gap"] = gap
        if details is not None:
            details.setdefault("user_groups", {})[g] = per
    return out
