"""Temporal train / validation / test split.

A global time cut-off, as in production: the model is trained on the past and evaluated on the future
(Meng, McCreadie, Macdonald, Ounis, "Exploring Data Splitting Strategies for the Evaluation of Recommendation
Models", RecSys 2020, https://arxiv.org/abs/2007.13237). Random splits leak the future into training.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from .config import SplitConfig
from .errors import DataError

__all__ = ["Split", "temporal_split", "to_csr"]


def to_csr(df: pl.DataFrame, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary CSR (float32) of the distinct ``(user_idx, item_idx)`` pairs in ``df``; shape (n_users, n_items)."""
    pairs = df.select("user_idx", "item_idx").unique()
    m = sp.csr_matrix((np.ones(pairs.height, np.float32),
                       (pairs["user_idx"].to_numpy(), pairs["item_idx"].to_numpy())), shape=shape)
    m.sort_indices()
    return m


@dataclass(frozen=True)
class Split:
    """The matrices of one temporal split, all CSR float32 of shape (n_users, n_items), binary.

    Attributes
    ----------
    train : csr_matrix
        Positives (weight >= positive_threshold) before the cut-off: what the final model is fit on.
    train_seen : csr_matrix
        Every interaction before the cut-off, any weight: excluded from recommendations.
    test : csr_matrix
        Positives at or after the cut-off, minus pairs already in ``train_seen``.
    fit, validation : csr_matrix
        ``train`` cut again at ``validation_cutoff``: early stopping fits on ``fit`` and scores on
        ``validation`` (positives not in ``fit_seen``); ``fit_seen`` is what validation excludes.
    cutoff, validation_cutoff : datetime
        UTC time cut-offs; test is ``ts >= cutoff``.
    stats : dict
        Counts and cold-start shares (see :func:`temporal_split`).
    """

    train: sp.csr_matrix
    train_seen: sp.csr_matrix
    test: sp.csr_matrix
    fit: sp.csr_matrix
    fit_seen: sp.csr_matrix
    validation: sp.csr_matrix
    cutoff: datetime
    validation_cutoff: datetime
    stats: dict

    @property
    def warm_test_users(self) -> np.ndarray:
        """Indices (int64) of users with test positives and at least one training positive."""
        return np.flatnonzero((self.test.getnnz(axis=1) > 0) & (self.train.getnnz(axis=1) > 0))


def _cut(ts: pl.Series, fraction: float) -> datetime:
    """The timestamp at the ``1 - fraction`` quantile (nearest rank)."""
    return ts.sort().gather(min(int(np.floor(len(ts) * (1 - fraction))), len(ts) - 1))[0]


def temporal_split(interactions: pl.DataFrame, shape: tuple[int, int], config: SplitConfig | None = None,
                   *, positive_threshold: float = 4.0) -> Split:
    """Split interactions at a global time cut-off.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_idx, item_idx, weight, ts`` (see :class:`recsys_lab.features.Dataset`).
    shape : (int, int)
        (n_users, n_items).
    config : SplitConfig, optional
        ``test_fraction`` (last share of interactions by time) and ``validation_fraction`` (last share of
        the training interactions, for early stopping).
    positive_threshold : float
        Interactions whose weight is at least this are positives.

    Returns
    -------
    Split
        ``stats`` holds: ``n_train``, ``n_test`` (interactions), ``n_train_pos``, ``n_test_pos``,
        ``test_users``, ``warm_test_users`` (users with test positives and training positives),
        ``cold_user_share`` (test users with no training interaction), ``cold_item_share`` (test items with
        no training interaction), ``cold_interaction_share`` (test positives whose user or item is cold).

    Raises
    ------
    DataError
        Fewer than 2 distinct timestamps, or a side of the split is empty.
    """
    config = config or SplitConfig()
    if interactions.height < 2 or interactions["ts"].n_unique() < 2:
        raise DataError("temporal split needs at least 2 distinct timestamps in the interactions")
    cutoff = _cut(interactions["ts"], config.test_fraction)
    before = interactions.filter(pl.col("ts") < cutoff)
    after = interactions.filter(pl.col("ts") >= cutoff)
    if before.height == 0 or after.height == 0:
        raise DataError(f"temporal split at {cutoff} leaves an empty side (train {before.height}, "
                        f"test {after.height}); change split.test_fraction")
    positive = pl.col("weight") >= positive_threshold
    train_seen = to_csr(before, shape)
    train = to_csr(before.filter(positive), shape)
    test = to_csr(after.filter(positive), shape)
    test = test - test.multiply(train_seen)
    test.eliminate_zeros()

    if config.validation_fraction > 0:
        vcut = _cut(before["ts"], config.validation_fraction)
        fit_part = before.filter(pl.col("ts") < vcut)
        fit_seen = to_csr(fit_part, shape)
        fit = to_csr(fit_part.filter(positive), shape)
        validation = to_csr(before.filter((pl.col("ts") >= vcut) & positive), shape)
        validation = validation - validation.multiply(fit_seen)
        validation.eliminate_zeros()
    else:
        vcut, fit, fit_seen, validation = cutoff, train, train_seen, sp.csr_matrix(shape, dtype=np.float32)

    train_users = np.flatnonzero(train_seen.getnnz(axis=1) > 0)
    train_items = np.flatnonzero(train_seen.getnnz(axis=0) > 0)
    test_users = after["user_idx"].unique().to_numpy()
    test_items = after["item_idx"].unique().to_numpy()
    tp = after.filter(positive)
    cold_pos = ~np.isin(tp["user_idx"].to_numpy(), train_users) | ~np.isin(tp["item_idx"].to_numpy(), train_items)
    stats = {
        "n_train": before.height, "n_test": after.height,
        "n_train_pos": int(train.nnz), "n_test_pos": int(test.nnz),
        "test_users": int(len(test_users)),
        "warm_test_users": int(((test.getnnz(axis=1) > 0) & (train.getnnz(axis=1) > 0)).sum()),
        "cold_user_share": float(np.mean(~np.isin(test_users, train_users))),
        "cold_item_share": float(np.mean(~np.isin(test_items, train_items))),
        "cold_interaction_share": float(cold_pos.mean()) if len(cold_pos) else 0.0,
        "cutoff": cutoff.isoformat(),
    }
    return Split(train=train, train_seen=train_seen, test=test, fit=fit, fit_seen=fit_seen,
                 validation=validation, cutoff=cutoff, validation_cutoff=vcut, stats=stats)
