"""(user, candidate) features as of a cut-off: nothing after it is read.

What a feature may see is one :class:`AsOf`: the interactions seen before the cut-off (a sparse matrix of the
split: ``fit_seen`` for the validation phase, ``train_seen`` for the test phase), their positives, and the
timestamps of exactly those interactions. Features per pair: each generator's score, its per-user z-score and its
rank in the generator's top-N; item popularity (all time and over 7/28/180-day windows before the latest seen
timestamp); item age; user activity; the user's affinity to the item's side features (category shares of the
user's positives, e.g. ``genre=Comedy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.ranking.candidates import CandidateSet, pair_scores

__all__ = ["AsOf", "WINDOWS", "as_of", "pair_features"]

WINDOWS = (7, 28, 180)
"""Popularity windows in days, ending at the latest timestamp seen as of the cut-off."""


@dataclass(frozen=True)
class AsOf:
    """What features may read: the log as of a cut-off.

    Attributes
    ----------
    seen : csr_matrix of shape (n_users, n_items)
        Every interaction before the cut-off (any weight).
    positives : csr_matrix of shape (n_users, n_items)
        Its positives.
    item_counts : dict of str to ndarray of shape (n_items,), float32
        ``all`` and ``<w>d`` per window: users per item (seen pairs; in a window: first seen in it; windows need
        timestamps).
    item_age : ndarray of shape (n_items,), float32
        Days from the item's first seen interaction to the latest seen timestamp (NaN: unseen or no timestamps).
    side : csr_matrix of shape (n_items, n_side) or None
        Item side features without the identity tokens (category affinity).
    """

    seen: sp.csr_matrix
    positives: sp.csr_matrix
    item_counts: dict[str, np.ndarray]
    item_age: np.ndarray
    side: sp.csr_matrix | None


def as_of(seen: sp.csr_matrix, positives: sp.csr_matrix, interactions: pl.DataFrame | None = None, *,
          item_features: sp.csr_matrix | None = None, item_tokens: list[str] | None = None) -> AsOf:
    """The :class:`AsOf` of one cut-off: timestamps are read only for pairs stored in ``seen``, at each pair's first
    interaction (under the time protocols it is before the cut-off; under ``random`` a repeated pair's first
    interaction may be a held-out one: only its timestamp is read, never its existence).

    Parameters
    ----------
    seen, positives : csr_matrix of shape (n_users, n_items)
        Interactions and positives before the cut-off (e.g. the split's ``fit_seen`` and ``fit``).
    interactions : pl.DataFrame, optional
        ``user_idx, item_idx, ts`` of the whole log; rows whose pair is not in ``seen`` are dropped first, and of
        the others only each pair's earliest timestamp is kept (so the validation and test periods are never read).
    item_features : csr_matrix of shape (n_items, n_tokens), optional
        The dataset's item features.
    item_tokens : list of str, optional
        Their tokens; ``item=<id>`` identity tokens are left out of the side features.

    Returns
    -------
    AsOf
    """
    n_items = seen.shape[1]
    counts = {"all": np.asarray(seen.getnnz(axis=0), np.float32)}
    age = np.full(n_items, np.nan, np.float32)
    if interactions is not None and interactions.height and interactions["ts"].null_count() < interactions.height:
        coo = seen.tocoo()
        codes = pl.Series("code", coo.row.astype(np.int64) * n_items + coo.col)
        # one row per pair, at its first interaction: a pair seen before the cut-off may repeat after it (a
        # replay in the validation or test period), and its later timestamps must not be read
        log = (interactions.select(pl.col("user_idx").cast(pl.Int64) * n_items + pl.col("item_idx").cast(pl.Int64),
                                   "item_idx", "ts")
               .rename({"user_idx": "code"}).filter(pl.col("code").is_in(codes.implode()) & pl.col("ts").is_not_null())
               .group_by("code").agg(pl.col("item_idx").first(), pl.col("ts").min()))
        if log.height:
            now = log["ts"].max()
            for w in WINDOWS:
                recent = log.filter(pl.col("ts") >= now - pl.duration(days=w))
                counts[f"{w}d"] = np.bincount(recent["item_idx"].to_numpy(), minlength=n_items).astype(np.float32)
            first = log.group_by("item_idx").agg(pl.col("ts").min())
            days = ((now - first["ts"]).dt.total_seconds() / 86400.0).to_numpy().astype(np.float32)
            age[first["item_idx"].to_numpy()] = days
    side = None
    if item_features is not None and item_tokens is not None:
        keep = np.array([not t.startswith("item=") for t in item_tokens], bool)
        if keep.any():
            side = sp.csr_matrix(item_features[:, np.flatnonzero(keep)] > 0, dtype=np.float32)
    return AsOf(seen.tocsr(), positives.tocsr(), counts, age, side)


def pair_features(cands: CandidateSet, generators: dict[str, tuple[np.ndarray, np.ndarray]], at: AsOf
                  ) -> tuple[np.ndarray, list[str]]:
    """The feature matrix of every candidate pair.

    Parameters
    ----------
    cands : CandidateSet
    generators : dict of str to (user_vecs, item_vecs)
        Scored for every pair (also for pairs a generator did not propose); their order fixes the columns.
    at : AsOf

    Returns
    -------
    X : ndarray of shape (n_pairs, n_features), float32
    names : list of str
        ``<gen>.score``, ``<gen>.z``, ``<gen>.rank`` per generator, ``item.pop``, ``item.pop_<w>d``, ``item.age``,
        ``user.n_seen``, ``user.n_pos``, ``user.affinity``, ``user.affinity_max`` (side features only).
    """
    cols, names = [], []
    for name, (u, i) in generators.items():
        score, z = pair_scores(u, i, cands)
        cols += [score, z]
        names += [f"{name}.score", f"{name}.z"]
        if name in cands.ranks:
            cols.append(cands.ranks[name])
            names.append(f"{name}.rank")
    for key, c in at.item_counts.items():
        cols.append(np.log1p(c[cands.item]))
        names.append("item.pop" if key == "all" else f"item.pop_{key}")
    cols.append(at.item_age[cands.item])
    names.append("item.age")
    users = cands.users[cands.row]
    cols += [np.log1p(at.seen.getnnz(axis=1)[users]).astype(np.float32),
             np.log1p(at.positives.getnnz(axis=1)[users]).astype(np.float32)]
    names += ["user.n_seen", "user.n_pos"]
    if at.side is not None:
        profile = at.positives[cands.users] @ at.side  # (n_users, n_side): side-feature counts of the positives
        profile = sp.csr_matrix(profile.multiply(1.0 / np.maximum(profile.sum(axis=1), 1e-12)))
        item_side = at.side[cands.item]
        per_pair = item_side.multiply(profile[cands.row]).tocsr()
        cols += [np.asarray(per_pair.sum(axis=1)).ravel().astype(np.float32),
                 np.asarray(per_pair.max(axis=1).todense()).ravel().astype(np.float32)]
        names += ["user.affinity", "user.affinity_max"]
    return np.column_stack(cols).astype(np.float32), names
