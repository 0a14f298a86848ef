"""The learned ranker: LightGBM ``lambdarank`` over the candidates' features (the only importer of lightgbm).

Trained on the validation slice: each validation user is a query group, its candidates the documents, its
validation positives among them the relevant ones. A seeded share of the users is held out for early stopping on
NDCG@k; groups without a positive carry no gradient and are dropped from training. With ``rank.refit`` the chosen
number of trees is then refit on every validation user (as the model is refit after early stopping).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from recsys_lab.config import RankConfig
from recsys_lab.errors import ModelError

__all__ = ["Ranker", "fit_ranker"]


@dataclass
class Ranker:
    """A fitted lambdarank model.

    Attributes
    ----------
    booster : lightgbm.Booster
    features : list of str
        Feature names, in column order.
    best_iteration : int
        Trees kept (early stopping).
    validation : float
        NDCG@k of the held-out validation users at ``best_iteration``.
    fit_seconds : float
    importance : dict of str to float
        Total gain per feature, descending.
    """

    booster: object
    features: list[str]
    best_iteration: int
    validation: float
    fit_seconds: float
    importance: dict[str, float] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores of candidate pairs (higher ranks first).

        Parameters
        ----------
        X : ndarray of shape (n_pairs, n_features)

        Returns
        -------
        ndarray of shape (n_pairs,), float64
        """
        return np.asarray(self.booster.predict(X, num_iteration=self.best_iteration or None, num_threads=1))


def _groups(sizes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Pair mask of the users at positions ``rows`` in a long layout with ``sizes`` pairs per user."""
    owner = np.repeat(np.arange(len(sizes)), sizes)
    return np.isin(owner, rows)


def fit_ranker(X: np.ndarray, y: np.ndarray, sizes: np.ndarray, names: list[str], settings: RankConfig, *,
               k: int, seed: int) -> Ranker:
    """Fit lambdarank with early stopping on held-out users.

    Parameters
    ----------
    X : ndarray of shape (n_pairs, n_features), float32
        Candidate features, grouped by user (``sizes`` pairs each, in order).
    y : ndarray of shape (n_pairs,), int
        1 for a validation positive, else 0.
    sizes : ndarray of int
        Pairs per user.
    names : list of str
        Feature names.
    settings : RankConfig
        ``num_leaves``, ``learning_rate``, ``n_estimators``, ``early_stopping``, ``min_child_samples``,
        ``holdout``, ``refit``.
    k : int
        NDCG@k of early stopping.
    seed : int

    Returns
    -------
    Ranker

    Raises
    ------
    ModelError
        No user with a positive among the candidates.
    """
    import lightgbm as lgb

    t0 = time.perf_counter()
    sizes = np.asarray(sizes, np.int64)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    useful = np.flatnonzero(np.bincount(owner, weights=y, minlength=len(sizes)) > 0)
    if len(useful) == 0:
        raise ModelError("ranker: no validation user has a positive among the candidates (raise rank.candidates)")
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(useful, size=int(round(settings.holdout * len(useful))), replace=False))
    train_users = np.setdiff1d(useful, held)
    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [k], "num_leaves": settings.num_leaves,
              "learning_rate": settings.learning_rate, "min_child_samples": settings.min_child_samples,
              "lambdarank_truncation_level": max(2 * k, 20), "feature_fraction": 0.9, "bagging_fraction": 0.9,
              "bagging_freq": 1, "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": 1,
              "verbose": -1}
    tm = _groups(sizes, train_users)
    train = lgb.Dataset(X[tm], y[tm], group=sizes[train_users], feature_name=names, free_raw_data=False)
    sets, callbacks = [], [lgb.log_evaluation(0)]
    if len(held):
        hm = _groups(sizes, held)
        sets = [lgb.Dataset(X[hm], y[hm], group=sizes[held], reference=train)]
        callbacks.append(lgb.early_stopping(settings.early_stopping, verbose=False))
    record: dict = {}
    callbacks.append(lgb.record_evaluation(record))
    booster = lgb.train(params, train, num_boost_round=settings.n_estimators, valid_sets=sets, callbacks=callbacks)
    best = int(booster.best_iteration or booster.current_iteration())
    curve = next(iter(record.values()), {}).get(f"ndcg@{k}", []) if record else []
    if settings.refit and len(held):  # the chosen number of trees, refit on every validation user
        um = _groups(sizes, useful)
        booster = lgb.train(params, lgb.Dataset(X[um], y[um], group=sizes[useful], feature_name=names),
                            num_boost_round=best)
    gain = booster.feature_importance(importance_type="gain", iteration=best)
    importance = dict(sorted(zip(names, map(float, gain)), key=lambda kv: -kv[1]))
    return Ranker(booster, list(names), best, float(curve[best - 1]) if len(curve) >= best else float("nan"),
                  time.perf_counter() - t0, importance)
