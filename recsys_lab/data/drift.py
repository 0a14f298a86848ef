"""Drift of a new snapshot against production's: the Population Stability Index and share metrics.

``PSI = sum_b (p_b - q_b) * ln(p_b / q_b)`` over bins ``b`` of a reference distribution ``q`` and a new one
``p`` (Yurdakul, "Statistical Properties of Population Stability Index", 2018,
https://scholarworks.wmich.edu/dissertations/3208). Bands: < 0.1 stable, 0.1-0.25 moderate, > 0.25 major.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from recsys_lab.config import FeatureConfig
from recsys_lab.data.warehouse import Snapshot

__all__ = ["psi", "psi_band", "drift", "snapshot_drift"]


def psi(reference: np.ndarray, new: np.ndarray, *, eps: float = 1e-4) -> float:
    """Population Stability Index between two histograms over the same bins.

    Parameters
    ----------
    reference, new : ndarray of shape (n_bins,)
        Counts or shares per bin (normalised here); bins empty in one side get ``eps`` share.

    Returns
    -------
    float
        ``sum (p - q) * ln(p / q)``; 0 for identical distributions.
    """
    q = np.asarray(reference, dtype=np.float64)
    p = np.asarray(new, dtype=np.float64)
    if q.sum() <= 0 or p.sum() <= 0:
        return float("nan")
    q = np.maximum(q / q.sum(), eps)
    p = np.maximum(p / p.sum(), eps)
    return float(np.sum((p - q) * np.log(p / q)))


def psi_band(value: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1-0.25) or ``major`` (> 0.25).

    Parameters
    ----------
    value : float
        Population stability index.

    Returns
    -------
    str
        The band; ``n/a`` for NaN.
    """
    if value != value:
        return "n/a"
    return "stable" if value < 0.1 else "moderate" if value <= 0.25 else "major"


def _categorical_psi(ref: pl.Series, new: pl.Series) -> float:
    r = ref.drop_nulls().value_counts()
    n = new.drop_nulls().value_counts()
    name = ref.name
    both = r.join(n, on=name, how="full", coalesce=True, suffix="_new").fill_null(0)
    return psi(both["count"].to_numpy(), both["count_new"].to_numpy())


def _numeric_psi(ref: np.ndarray, new: np.ndarray, bins: int = 10) -> float:
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if len(ref) == 0 or len(new) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(new == edges[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    return psi(np.histogram(ref, edges)[0], np.histogram(new, edges)[0])


def _same_id_types(reference: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]
                   ) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """Cast ids to text on both sides when one snapshot has integer ids and the other text ids."""
    out_r, out_n = dict(reference), dict(new)
    for key, tables in (("user_id", ("interactions", "users")), ("item_id", ("interactions", "items"))):
        if reference["interactions"].schema[key] != new["interactions"].schema[key]:
            for t in tables:
                out_r[t] = out_r[t].with_columns(pl.col(key).cast(pl.Utf8))
                out_n[t] = out_n[t].with_columns(pl.col(key).cast(pl.Utf8))
    return out_r, out_n


def drift(reference: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame], *, user_columns: tuple[str, ...] = (),
          item_columns: tuple[str, ...] = ()) -> dict[str, float]:
    """Drift of a new snapshot against a reference (production's) snapshot.

    Parameters
    ----------
    reference, new : dict
        ``{"interactions", "users", "items"}`` canonical tables.
    user_columns, item_columns : tuple of str
        Side-feature columns whose distributions are compared (list columns are exploded).

    Returns
    -------
    dict
        ``drift.psi.item_popularity`` (share of interactions per item), ``drift.psi.user_activity``
        (interactions per user, 10 quantile bins of the reference), ``drift.psi.weight``,
        ``drift.psi.user.<col>`` and ``drift.psi.item.<col>`` per side feature (share of interactions per
        value), ``drift.new_user_share`` / ``drift.new_item_share`` (share of the new interactions whose user
        / item has no interaction in the reference), ``drift.catalog_churn`` (1 - Jaccard of the two item
        tables' ids).
    """
    reference, new = _same_id_types(reference, new)
    ri, ni = reference["interactions"], new["interactions"]
    out = {
        "drift.psi.item_popularity": _categorical_psi(ri["item_id"], ni["item_id"]),
        "drift.psi.user_activity": _numeric_psi(ri.group_by("user_id").len()["len"].to_numpy().astype(float),
                                                ni.group_by("user_id").len()["len"].to_numpy().astype(float)),
        "drift.psi.weight": _categorical_psi(ri["weight"], ni["weight"]) if ni["weight"].n_unique() <= 20
        else _numeric_psi(ri["weight"].to_numpy(), ni["weight"].to_numpy()),
    }
    for kind, key, cols in (("user", "user_id", user_columns), ("item", "item_id", item_columns)):
        for col in cols:
            tr, tn = reference[f"{kind}s"], new[f"{kind}s"]
            if col not in tr.columns or col not in tn.columns:
                continue
            per_r = ri.join(tr.select(key, col), on=key, how="inner")[col]
            per_n = ni.join(tn.select(key, col), on=key, how="inner")[col]
            if isinstance(per_r.dtype, pl.List):
                per_r, per_n = per_r.explode(), per_n.explode()
            if per_r.dtype.is_numeric():
                value = _numeric_psi(per_r.to_numpy().astype(float), per_n.to_numpy().astype(float))
            else:
                value = _categorical_psi(per_r.cast(pl.Utf8), per_n.cast(pl.Utf8))
            out[f"drift.psi.{kind}.{col}"] = value
    out["drift.new_user_share"] = float((~ni["user_id"].is_in(ri["user_id"].unique().implode())).mean())
    out["drift.new_item_share"] = float((~ni["item_id"].is_in(ri["item_id"].unique().implode())).mean())
    ref_items, new_items = reference["items"]["item_id"].unique(), new["items"]["item_id"].unique()
    shared = int(new_items.is_in(ref_items.implode()).sum())
    union = len(ref_items) + len(new_items) - shared
    out["drift.catalog_churn"] = float(1 - shared / union) if union else 0.0
    return out


def snapshot_drift(new: Snapshot, reference: Snapshot, features: FeatureConfig) -> dict[str, float]:
    """:func:`drift` of two warehouse snapshots over the columns the model uses as side features.

    Parameters
    ----------
    new, reference : Snapshot
        This run's snapshot and production's.
    features : FeatureConfig
        ``user`` columns and the item columns (:meth:`FeatureConfig.item_columns`) whose PSI is measured.

    Returns
    -------
    dict of str to float
        See :func:`drift`.
    """
    tables, ref = ({t: s.table(t) for t in ("interactions", "users", "items")} for s in (new, reference))
    return drift(ref, tables, user_columns=features.user, item_columns=features.item_columns(tables["items"].columns))
