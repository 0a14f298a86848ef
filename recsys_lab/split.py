"""Train / validation / test splits: three protocols, one :class:`Split`.

- ``time_global``: one time cut-off for everyone; the model is trained on the past and evaluated on the future,
  as in production. Honest about time, but on ML-100k it leaves ~100 warm test users (64 % of test users are
  cold), too few to tell models apart.
- ``time_per_user``: each user's last ``test_fraction`` of interactions by time is test ("leave last out", per
  user): every user with enough history is evaluated (906 users on ML-100k).
- ``random``: each user's test share is drawn at random (seeded); for logs without timestamps.

Validation for early stopping is carved from the training side the same way. For the per-user protocols a
seeded share of users (``split.cold_users``) is held out of training entirely: they are the cold-start users on
which onboarding and fold-in are measured; ``time_global`` has natural cold users.

Meng, McCreadie, Macdonald, Ounis, "Exploring Data Splitting Strategies for the Evaluation of Recommendation
Models", RecSys 2020 (https://arxiv.org/abs/2007.13237) compares these protocols.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.config import SplitConfig
from recsys_lab.errors import ConfigError, DataError

__all__ = ["Split", "make_split", "temporal_split", "resolve_method", "to_csr"]


def to_csr(df: pl.DataFrame, shape: tuple[int, int], *, weights: bool = False) -> sp.csr_matrix:
    """CSR (float32) of the distinct ``(user_idx, item_idx)`` pairs in ``df``; shape (n_users, n_items).

    With ``weights`` the values are the summed ``weight`` of each pair, else 1.

    Parameters
    ----------
    df : pl.DataFrame
        ``user_idx, item_idx`` (internal indices) and, with ``weights``, ``weight``.
    shape : tuple of int
        ``(n_users, n_items)``.
    weights : bool
        Sum the weights of each pair instead of storing 1 (default False).

    Returns
    -------
    csr_matrix of shape (n_users, n_items), float32
        Sorted indices, one stored entry per distinct pair.
    """
    if weights:
        pairs = df.group_by("user_idx", "item_idx").agg(pl.col("weight").sum())
        values = pairs["weight"].to_numpy().astype(np.float32)
    else:
        pairs = df.select("user_idx", "item_idx").unique()
        values = np.ones(pairs.height, np.float32)
    m = sp.csr_matrix((values, (pairs["user_idx"].to_numpy(), pairs["item_idx"].to_numpy())), shape=shape)
    m.sort_indices()
    return m


@dataclass(frozen=True)
class Split:
    """The matrices of one split, CSR float32 of shape (n_users, n_items); binary unless named ``*_weights``.

    Attributes
    ----------
    method : str
        The protocol used (``time_global``, ``time_per_user`` or ``random``).
    train : csr_matrix
        Training positives (weight >= positive threshold): what the final model is fit on.
    train_weights : csr_matrix
        The same pairs with their summed (transformed) weights (ALS confidence, LightFM sample weights).
    train_seen : csr_matrix
        Every training interaction, any weight: excluded from recommendations.
    test : csr_matrix
        Test positives, minus pairs already in ``train_seen``.
    fit, fit_weights, fit_seen, validation : csr_matrix
        ``train`` split again for early stopping: fit on ``fit``, score on ``validation`` (positives not in
        ``fit_seen``).
    cold : pl.DataFrame
        Positives of the cold test users (no training interaction at all), ``user_idx, item_idx, weight, ts``,
        in time order per user (random order without timestamps): the onboarding sequences.
    cutoff, validation_cutoff : datetime or None
        ``time_global`` only: test is ``ts >= cutoff``.
    stats : dict
        Counts and shares (see :func:`make_split`).
    """

    method: str
    train: sp.csr_matrix
    train_weights: sp.csr_matrix
    train_seen: sp.csr_matrix
    test: sp.csr_matrix
    fit: sp.csr_matrix
    fit_weights: sp.csr_matrix
    fit_seen: sp.csr_matrix
    validation: sp.csr_matrix
    cold: pl.DataFrame
    cutoff: datetime | None
    validation_cutoff: datetime | None
    stats: dict

    def require_warm_users(self) -> "Split":
        """This split, if at least one user has both training and test positives (else nothing can be evaluated).

        Returns
        -------
        Split
            ``self``.

        Raises
        ------
        DataError
            No warm test user; the message names the method and what to change.
        """
        if self.stats["warm_test_users"] == 0:
            raise DataError(f"no user has both training and test positives under split.method = {self.method!r}: "
                            "nothing to evaluate (more data, a lower data.positive_threshold or another split.method)")
        return self

    @property
    def warm_test_users(self) -> np.ndarray:
        """Indices (int64) of users with test positives and at least one training positive."""
        return np.flatnonzero((self.test.getnnz(axis=1) > 0) & (self.train.getnnz(axis=1) > 0))

    @property
    def cold_users(self) -> np.ndarray:
        """Indices (int64) of test users with no training interaction (sorted)."""
        return np.unique(self.cold["user_idx"].to_numpy()).astype(np.int64)

    @property
    def validation_users(self) -> np.ndarray:
        """Indices (int64) of users with validation positives and fit positives."""
        return np.flatnonzero((self.validation.getnnz(axis=1) > 0) & (self.fit.getnnz(axis=1) > 0))


def resolve_method(config: SplitConfig, *, has_time: bool, windows: bool = False) -> str:
    """The protocol ``split.method = "auto"`` stands for, given the data.

    Parameters
    ----------
    config : SplitConfig
        ``config.split``.
    has_time : bool
        Whether the log has timestamps.
    windows : bool
        Whether time-windowed features are configured (default False).

    Returns
    -------
    str
        ``time_global``, ``time_per_user``, ``random`` or the configured method when it is not ``auto``.

    Raises
    ------
    ConfigError
        A time-based protocol without timestamps, or time-windowed features without a global cut-off.
    """
    method = config.method
    if method == "auto":
        method = ("time_global" if windows else "time_per_user") if has_time else "random"
    if method.startswith("time") and not has_time:
        raise ConfigError(f"{method} needs a time column; this log has none (use 'random' or set data.time_col)",
                          parameter="split.method")
    if windows and method != "time_global":
        raise ConfigError(f"time-windowed features (features.windows) need one global cut-off; got {method!r} "
                          "(use 'time_global' or drop features.windows)", parameter="split.method")
    return method


def _cut(ts: pl.Series, fraction: float) -> datetime:
    """The timestamp at the ``1 - fraction`` quantile (nearest rank)."""
    return ts.sort().gather(min(int(np.floor(len(ts) * (1 - fraction))), len(ts) - 1))[0]


def _per_user_tail(df: pl.DataFrame, fraction: float, order: str) -> pl.Series:
    """Boolean mask: the last ``round(n * fraction)`` rows of each user by ``order`` (at least 1 when n >= 2)."""
    n = pl.len().over("user_idx")
    n_tail = pl.when(n >= 2).then(pl.max_horizontal((n * fraction + 0.5).floor().cast(pl.Int64), pl.lit(1)))
    ranked = df.with_row_index("_row").sort(["user_idx", order, "_row"])
    flagged = ranked.with_columns((pl.int_range(pl.len()).over("user_idx") >= n - n_tail.otherwise(0))
                                  .fill_null(False).alias("_tail"))
    return flagged.sort("_row")["_tail"]


def make_split(interactions: pl.DataFrame, shape: tuple[int, int], config: SplitConfig | None = None, *,
               positive_threshold: float, seed: int = 42, windows: bool = False) -> Split:
    """Split interactions with the configured protocol.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_idx, item_idx, weight, ts`` (see :class:`recsys_lab.features.Dataset`); ``ts`` may be all null
        (a log without timestamps).
    shape : (int, int)
        (n_users, n_items).
    config : SplitConfig, optional
        ``method``, ``test_fraction``, ``validation_fraction``, ``cold_users``.
    positive_threshold : float
        Interactions whose (transformed) weight is at least this are positives
        (:func:`recsys_lab.data.weights.positive_threshold`).
    seed : int
        Seeds the random protocol and the cold-user sample.
    windows : bool
        Time-windowed features are configured (``auto`` then means ``time_global``).

    Returns
    -------
    Split
        ``stats`` holds ``method``, ``n_train``, ``n_test`` (interactions), ``n_train_pos``, ``n_test_pos``,
        ``test_users``, ``warm_test_users`` (users with test and training positives), ``cold_test_users``,
        ``cold_user_share`` (test users with no training interaction), ``cold_item_share`` (test items with no
        training interaction), ``cold_interaction_share`` (test positives whose user or item is cold) and, for
        ``time_global``, ``cutoff``.

    Raises
    ------
    ConfigError
        A time protocol on a log without timestamps (see :func:`resolve_method`).
    DataError
        Too few distinct timestamps, or no training positive.
    """
    config = config or SplitConfig()
    has_time = interactions.height > 0 and interactions["ts"].null_count() < interactions.height
    method = resolve_method(config, has_time=has_time, windows=windows)
    rng = np.random.default_rng(seed)
    positive = pl.col("weight") >= positive_threshold
    cutoff = vcut = None
    if method == "time_global":
        if interactions.height < 2 or interactions["ts"].n_unique() < 2:
            raise DataError("temporal split needs at least 2 distinct timestamps in the interactions")
        cutoff = _cut(interactions["ts"], config.test_fraction)
        before = interactions.filter(pl.col("ts") < cutoff)
        after = interactions.filter(pl.col("ts") >= cutoff)
        if before.height == 0 or after.height == 0:
            raise DataError(f"temporal split at {cutoff} leaves an empty side (train {before.height}, "
                            f"test {after.height}); change split.test_fraction")
        held_out = after.filter(pl.lit(False))
    else:
        order = "ts" if method == "time_per_user" else "_rand"
        df = interactions.with_columns(pl.Series("_rand", rng.random(interactions.height)))
        users = np.unique(df["user_idx"].to_numpy())
        n_cold = int(round(config.cold_users * len(users)))
        cold_ids = rng.choice(users, size=n_cold, replace=False) if n_cold else np.array([], np.int64)
        is_cold = pl.col("user_idx").is_in(pl.Series(cold_ids.astype(np.int64)).implode())
        held_out = df.filter(is_cold)
        rest = df.filter(~is_cold)
        tail = _per_user_tail(rest, config.test_fraction, order)
        before, after = rest.filter(~tail), rest.filter(tail)
    train_seen = to_csr(before, shape)
    train_pos = before.filter(positive)
    train = to_csr(train_pos, shape)
    if train.nnz == 0:
        raise DataError(f"the training side holds no positive interaction (weight >= {positive_threshold}): "
                        "check data.positive_threshold and data.weight_transform")
    test_part = pl.concat([after, held_out.select(after.columns)]) if held_out.height else after
    test = to_csr(test_part.filter(positive), shape)
    test = test - test.multiply(train_seen)
    test.eliminate_zeros()

    if config.validation_fraction > 0:
        if method == "time_global":
            vcut = _cut(before["ts"], config.validation_fraction)
            val_mask = before["ts"] >= vcut
        else:
            val_mask = _per_user_tail(before, config.validation_fraction,
                                      "ts" if method == "time_per_user" else "_rand")
        fit_part = before.filter(~val_mask)
        fit_seen = to_csr(fit_part, shape)
        fit = to_csr(fit_part.filter(positive), shape)
        fit_weights = to_csr(fit_part.filter(positive), shape, weights=True)
        validation = to_csr(before.filter(val_mask).filter(positive), shape)
        validation = validation - validation.multiply(fit_seen)
        validation.eliminate_zeros()
    else:
        fit, fit_seen, validation = train, train_seen, sp.csr_matrix(shape, dtype=np.float32)
        fit_weights = to_csr(train_pos, shape, weights=True)

    train_users = np.flatnonzero(train_seen.getnnz(axis=1) > 0)
    train_items = np.flatnonzero(train_seen.getnnz(axis=0) > 0)
    test_users = test_part["user_idx"].unique().to_numpy()
    test_items = test_part["item_idx"].unique().to_numpy()
    tp = test_part.filter(positive)
    cold_pos = ~np.isin(tp["user_idx"].to_numpy(), train_users) | ~np.isin(tp["item_idx"].to_numpy(), train_items)
    cold = (tp.filter(~pl.col("user_idx").is_in(pl.Series(train_users).implode()))
            .with_row_index("_row").sort(["user_idx", "ts" if has_time else "_row", "_row"])
            .select("user_idx", "item_idx", "weight", "ts"))
    warm = int(((test.getnnz(axis=1) > 0) & (train.getnnz(axis=1) > 0)).sum())
    stats = {
        "method": method,
        "n_train": before.height, "n_test": test_part.height,
        "n_train_pos": int(train.nnz), "n_test_pos": int(test.nnz),
        "test_users": int(len(test_users)),
        "warm_test_users": warm,
        "cold_test_users": int(cold["user_idx"].n_unique()),
        "cold_user_share": float(np.mean(~np.isin(test_users, train_users))) if len(test_users) else 0.0,
        "cold_item_share": float(np.mean(~np.isin(test_items, train_items))) if len(test_items) else 0.0,
        "cold_interaction_share": float(cold_pos.mean()) if len(cold_pos) else 0.0,
    }
    if cutoff is not None:
        stats["cutoff"] = cutoff.isoformat()
    return Split(method=method, train=train, train_weights=to_csr(train_pos, shape, weights=True),
                 train_seen=train_seen, test=test, fit=fit, fit_weights=fit_weights, fit_seen=fit_seen,
                 validation=validation, cold=cold, cutoff=cutoff, validation_cutoff=vcut, stats=stats)


def temporal_split(interactions: pl.DataFrame, shape: tuple[int, int], config: SplitConfig | None = None,
                   *, positive_threshold: float) -> Split:
    """The global time cut-off protocol (``make_split`` with ``method = "time_global"``).

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_idx, item_idx, weight, ts``.
    shape : tuple of int
        ``(n_users, n_items)``.
    config : SplitConfig, optional
        Fractions, ``cold_users`` and seed (its ``method`` is ignored; default ``SplitConfig()``).
    positive_threshold : float
        Interactions with ``weight >= positive_threshold`` are positives (the weights are transformed already;
        :func:`recsys_lab.data.weights.positive_threshold`).

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        The log has no timestamps (see :func:`make_split`).
    DataError
        Too few distinct timestamps, or no training positive.
    """
    config = config or SplitConfig()
    cfg = SplitConfig(method="time_global", test_fraction=config.test_fraction,
                      validation_fraction=config.validation_fraction, cold_users=config.cold_users, seed=config.seed)
    return make_split(interactions, shape, cfg, positive_threshold=positive_threshold)
