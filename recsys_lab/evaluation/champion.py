"""Champion vs challenger on one split: production's saved vectors re-scored on the candidate's split.

Production's vectors are mapped into the candidate's index space (:func:`production_vectors`): items production
does not know can never be recommended, users it never saw get production's cold-start path (fold-in of their
training items with its average user as prior). :func:`compare` scores them on the candidate's test users and
pairs each gated metric per user (:func:`recsys_lab.evaluation.intervals.paired_difference`); :func:`stability`
measures how much the item neighbours and the users' top-k lists moved. Arrays in, numbers out: the caller
loads production's run (its ids and vectors, :class:`RunVectors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys_lab.features import align
from recsys_lab.evaluation import embedding_quality as embedding
from recsys_lab.evaluation import keys
from recsys_lab.evaluation.intervals import paired_difference
from recsys_lab.evaluation.ranking import per_user_metrics, sample_users, top_k
from recsys_lab.models import foldin

__all__ = ["RunVectors", "ChampionResult", "production_vectors", "compare", "stability"]


@dataclass(frozen=True)
class RunVectors:
    """A saved run's ids and folded vectors (``artifacts/id_maps.npz`` and ``embeddings.npz``).

    Attributes
    ----------
    user_ids, item_ids : ndarray
        External ids in the run's index order.
    user_vecs, item_vecs : ndarray of shape (n_users, d + 1) and (n_items, d + 1), float32
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_vecs: np.ndarray
    item_vecs: np.ndarray

    @classmethod
    def of(cls, run: Any) -> "RunVectors":
        """The four arrays of any loaded run object that has them as attributes.

        Parameters
        ----------
        run : object
            E.g. a loaded production run.

        Returns
        -------
        RunVectors
        """
        return cls(run.user_ids, run.item_ids, run.user_vecs, run.item_vecs)


@dataclass
class ChampionResult:
    """Production re-scored on the candidate's split.

    Attributes
    ----------
    metrics : dict of str to float
        ``production.<metric>``, ``vs.production.<metric>`` with ``.ci_low`` / ``.ci_high`` per gated metric,
        ``production.known_users`` and ``production.known_items``.
    comparison : dict of str to dict
        Per gated metric the paired difference candidate - production plus ``value`` and ``production`` (means),
        as :func:`recsys_lab.evaluation.gate.check_gate` reads it.
    per_user : dict of str to ndarray
        Production's per-user metrics on the candidate's evaluation users.
    """

    metrics: dict[str, float]
    comparison: dict[str, dict] = field(default_factory=dict)
    per_user: dict[str, np.ndarray] = field(default_factory=dict)


def production_vectors(prod: RunVectors, user_ids: np.ndarray, item_ids: np.ndarray, train: sp.csr_matrix,
                       eval_users: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Production's vectors in the candidate's index space.

    Parameters
    ----------
    prod : RunVectors
        Production's ids and vectors.
    user_ids, item_ids : ndarray
        The candidate's external ids in index order.
    train : csr_matrix of shape (n_users, n_items)
        The candidate's training positives (what production folds in for users it never saw).
    eval_users : ndarray of int64
        The candidate's evaluation users (for the count of those production knows).

    Returns
    -------
    user_vecs, item_vecs : ndarray, float32
        Unknown items score -1e9; users production never saw are folded in with its average user as prior.
    known_users : int
        Evaluation users production knows.
    known_items : int
        Items production knows.
    """
    d = prod.item_vecs.shape[1]
    ours_i, theirs_i = align(item_ids, prod.item_ids)  # ids compared as text if types differ
    ifound = np.zeros(len(item_ids), bool)
    ifound[ours_i] = True
    items = np.zeros((len(item_ids), d), np.float32)
    items[ours_i] = prod.item_vecs[theirs_i]
    items[~ifound, -1] = -1e9
    ours_u, theirs_u = align(user_ids, prod.user_ids)
    ufound = np.zeros(len(user_ids), bool)
    ufound[ours_u] = True
    users = np.zeros((len(user_ids), prod.user_vecs.shape[1]), np.float32)
    users[ours_u] = prod.user_vecs[theirs_u]
    cold = np.flatnonzero(~ufound)
    if len(cold):  # production's serving path for them: fold-in with its average user as prior
        x = train[cold].multiply(ifound[None, :].astype(np.float32)).tocsr()
        prior = foldin.average_user(prod.user_vecs)
        users[cold] = foldin.FoldIn(items, prior=prior).users(x)
    users[:, -1] = 1.0
    return users, items, int(ufound[eval_users].sum()), int(ifound.sum())


def compare(prod: RunVectors, model_per_user: dict[str, np.ndarray], metrics: list[str] | tuple[str, ...], *,
            user_ids: np.ndarray, item_ids: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix,
            exclude: sp.csr_matrix, eval_users: np.ndarray, k: int, n_resamples: int = 1000, seed: int = 0
            ) -> ChampionResult:
    """Production re-scored on the candidate's test users, each of ``metrics`` paired per user.

    Parameters
    ----------
    prod : RunVectors
    model_per_user : dict of str to ndarray
        The candidate's per-user metrics on ``eval_users``.
    metrics : sequence of str
        Metric keys to compare (``gate.max_regression``, ``@k`` resolved); those not scored per user are skipped.
    user_ids, item_ids, train : see :func:`production_vectors`.
    test, exclude : csr_matrix of shape (n_users, n_items)
        The candidate's test positives and never-recommended items.
    eval_users : ndarray of int64
    k : int
    n_resamples, seed : int
        Bootstrap resamples and seed.

    Returns
    -------
    ChampionResult
    """
    u, i, known_users, known_items = production_vectors(prod, user_ids, item_ids, train, eval_users)
    values, _ = per_user_metrics(u, i, test, users=eval_users, exclude=exclude, k=k)
    out: dict[str, float] = {}
    comparison = {}
    for metric in metrics:
        if metric not in values:
            continue
        d = paired_difference(model_per_user[metric], values[metric], n_resamples=n_resamples, seed=seed)
        d.update(value=float(np.nanmean(model_per_user[metric])), production=float(np.nanmean(values[metric])))
        comparison[metric] = d
        key = keys.vs("production", metric)
        low, high = keys.ci(key)
        out.update({keys.production(metric): d["production"], key: d["delta"], low: d["ci_low"],
                    high: d["ci_high"]})
    out[keys.production("known_users")] = known_users
    out[keys.production("known_items")] = known_items
    return ChampionResult(metrics=out, comparison=comparison, per_user=values)


def stability(prod: RunVectors, item_vecs: np.ndarray, recommended: np.ndarray, *, user_ids: np.ndarray,
              item_ids: np.ndarray, train: sp.csr_matrix, exclude: sp.csr_matrix, eval_users: np.ndarray, k: int,
              max_items: int = 0, seed: int = 0, notes: list[str] | None = None) -> dict[str, float]:
    """How much a retrain moved against production, on the ids both know.

    Parameters
    ----------
    prod : RunVectors
    item_vecs : ndarray of shape (n_items, d + 1)
        The candidate's folded item vectors.
    recommended : ndarray of shape (len(eval_users), k), int64
        The candidate's top-k lists of ``eval_users``.
    user_ids, item_ids, train : see :func:`production_vectors`.
    exclude : csr_matrix
        Never-recommended items.
    eval_users : ndarray of int64
    k : int
    max_items : int
        Seeded sample of query items (``eval.embedding_max_items``; 0: all).
    seed : int
    notes : list of str, optional
        Why a figure was skipped is appended here.

    Returns
    -------
    dict of str to float
        ``embedding.stability@k`` (mean Jaccard of item neighbour sets), ``embedding.shared_items`` and, with
        shared users, ``recs.stability@k``, ``recs.churn@k`` and ``recs.shared_users``; empty with too few shared
        items.
    """
    ours, theirs = align(item_ids, prod.item_ids)
    if len(ours) <= k:
        if notes is not None:
            notes.append(f"stability skipped: only {len(ours)} items shared with production")
        return {}
    # neighbours within the shared items on both sides (a seeded sample of them as queries), as external ids
    q = sample_users(np.arange(len(ours)), max_items, seed)
    a = embedding.inner_product_neighbours(item_vecs[ours], q, k)[0]
    b = embedding.inner_product_neighbours(prod.item_vecs[theirs], q, k)[0]
    item_j = embedding.jaccard_overlap(item_ids[ours][a], item_ids[ours][b])
    out = {keys.at("embedding.stability", k): float(np.nanmean(item_j)), "embedding.shared_items": int(len(ours))}
    u_ours, u_theirs = align(user_ids[eval_users], prod.user_ids)
    if len(u_ours):
        pu, pi, _, _ = production_vectors(prod, user_ids, item_ids, train, eval_users)
        prod_lists, _ = top_k(pu, pi, k, users=eval_users[u_ours], exclude=exclude)
        user_j = embedding.jaccard_overlap(recommended[u_ours], prod_lists)
        out.update({keys.at("recs.stability", k): float(np.nanmean(user_j)),
                    keys.at("recs.churn", k): float(1 - np.nanmean(user_j)), "recs.shared_users": int(len(u_ours))})
    return out
