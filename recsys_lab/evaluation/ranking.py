"""Exact top-k retrieval and ranking metrics, vectorised with numpy.

Scores are dot products of user and item vectors (``user_vecs @ item_vecs.T``); items a user has already
seen are excluded (score -inf). Metrics are averaged over the given users, each with at least one test
positive. Definitions follow Manning, Raghavan, Schütze, "Introduction to Information Retrieval" (2008),
ch. 8 (precision, recall, MAP, MRR) and Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR
techniques", TOIS 2002 (NDCG, binary gain, log2 discount). Ties in scores count in the positive's favour
(strictly greater scores rank above it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.evaluation import keys
from recsys_lab.evaluation.intervals import bootstrap_ci, paired_difference
from recsys_lab.retrieval.recall import recall_overlap  # re-exported: measured where the index is
from recsys_lab.retrieval.topk import _batches, _masked_scores, top_k  # top_k re-exported: evaluation.top_k is public

__all__ = ["per_user_table", "top_k", "ranking_metrics", "rank_metrics", "coverage_at_k", "per_user_metrics", "evaluate",
           "recall_overlap", "popularity_vectors", "sample_users", "EvaluationResult",
           "evaluate_models", "horizon_metrics", "validation_scorer", "candidates"]


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
    names = [keys.at(m, k) for m in ("precision", "recall", "ndcg", "map")]
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
    out[keys.at("coverage", k)] = coverage_at_k(items, len(item_vecs), k)
    out["n_users"] = int(len(users))
    return out


@dataclass
class EvaluationResult:
    """Every model scored on the same test users: flat metrics, per-user values and the top-k lists.

    Attributes
    ----------
    metrics : dict of str to float
        ``metrics.json`` keys of the step (see :func:`evaluate_models`).
    per_user : dict of str to dict of str to ndarray
        Per model (``model`` and each baseline), every metric per user in ``users`` order.
    recommended : dict of str to ndarray of shape (n, k), int64
        Per model, the top-k lists of ``users``.
    users : ndarray of int64
        The evaluated users (internal indices).
    warnings : list of str
        Evaluation warnings (an interval too wide to tell models apart).
    """

    metrics: dict[str, float]
    per_user: dict[str, dict[str, np.ndarray]]
    recommended: dict[str, np.ndarray]
    users: np.ndarray
    warnings: list[str] = field(default_factory=list)


def evaluate_models(candidates: dict[str, tuple[np.ndarray, np.ndarray]], test: sp.csr_matrix, *, users: np.ndarray,
                    exclude: sp.csr_matrix | None, k: int, n_resamples: int = 1000, seed: int = 0,
                    split_stats: dict | None = None, best_epoch: int | None = None, protocol: str = "",
                    max_ci_width: float = float("inf")) -> EvaluationResult:
    """The model and every baseline on the same users, with 95 % intervals and paired differences to the model.

    Parameters
    ----------
    candidates : dict of str to (user_vecs, item_vecs)
        ``model`` first, then the baselines (:data:`recsys_lab.evaluation.keys.BASELINES`).
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    users : ndarray of int64
        The users to evaluate (each with a test positive).
    exclude : csr_matrix or None
        Items never recommended (the split's ``train_seen``).
    k : int
        ``eval.k``.
    n_resamples, seed : int
        Bootstrap resamples and seed (:mod:`recsys_lab.evaluation.intervals`).
    split_stats : dict, optional
        ``Split.stats``: recorded as ``split.*`` (except ``cutoff`` and ``method``).
    best_epoch : int, optional
        The fit's chosen epoch, recorded as ``fit.best_epoch``.
    protocol : str
        The split method, named in the warning.
    max_ci_width : float
        Warn when the interval of NDCG@k is wider (``eval.max_ci_width``).

    Returns
    -------
    EvaluationResult
        Metrics: the model's under plain names (``ndcg@10``, ``ndcg@10.ci_low``, ``ndcg@10.ci_high``, ...,
        ``coverage@10``), each baseline's under ``baseline.<name>.``, ``vs.<name>.ndcg@k`` / ``recall@k`` (paired
        difference model - baseline with its interval), ``split.*``, ``eval.n_users``, ``eval.k``,
        ``fit.best_epoch`` and ``eval.ndcg@k.ci_width``.
    """
    metrics: dict[str, float] = {}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    recommended: dict[str, np.ndarray] = {}
    for name, (u, i) in candidates.items():
        values, items = per_user_metrics(u, i, test, users=users, exclude=exclude, k=k)
        per_user[name], recommended[name] = values, items
        names = list(values)
        matrix = np.column_stack([values[n] for n in names])
        low, high = bootstrap_ci(matrix, n_resamples=n_resamples, seed=seed)
        for j, metric in enumerate(names):
            col, key = matrix[:, j], keys.model_key(name, metric)
            lo_key, hi_key = keys.ci(key)
            metrics[key] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
            metrics[lo_key], metrics[hi_key] = float(low[j]), float(high[j])
        metrics[keys.model_key(name, keys.at("coverage", k))] = coverage_at_k(items, len(i), k)
    for name in per_user:
        if name == keys.MODEL:
            continue
        for metric in (keys.at("ndcg", k), keys.at("recall", k)):
            d = paired_difference(per_user[keys.MODEL][metric], per_user[name][metric], n_resamples=n_resamples,
                                  seed=seed)
            key = keys.vs(name, metric)
            lo_key, hi_key = keys.ci(key)
            metrics.update({key: d["delta"], lo_key: d["ci_low"], hi_key: d["ci_high"]})
    metrics.update({f"split.{key}": value for key, value in (split_stats or {}).items()
                    if key not in ("cutoff", "method")})
    metrics["split.eval_users"] = metrics["eval.n_users"] = int(len(users))
    metrics["eval.k"] = k
    if best_epoch is not None:
        metrics["fit.best_epoch"] = best_epoch
    ndcg_low, ndcg_high = keys.ci(keys.at("ndcg", k))
    width = metrics[ndcg_high] - metrics[ndcg_low]
    metrics[f"eval.{keys.at('ndcg', k)}.ci_width"] = float(width)
    warnings = []
    if width > max_ci_width:
        warnings.append(f"the 95% interval of ndcg@{k} is {width:.3f} wide (> eval.max_ci_width {max_ci_width}) "
                        f"with {len(users)} evaluation users ({protocol} split): too few users to tell models apart")
    return EvaluationResult(metrics=metrics, per_user=per_user, recommended=recommended, users=users,
                            warnings=warnings)


def horizon_metrics(candidates: dict[str, tuple[np.ndarray, np.ndarray]], interactions, split, users: np.ndarray,  # noqa: ANN001
                    *, k: int, days: float, n_resamples: int = 1000, seed: int = 0,
                    notes: list[str] | None = None) -> dict[str, float]:
    """Ranking metrics on each user's test positives in the first ``days`` after the cut-off (future window).

    Parameters
    ----------
    candidates : dict of str to (user_vecs, item_vecs)
        ``model`` first, then baselines.
    interactions : pl.DataFrame
        ``Dataset.interactions`` (``user_idx, item_idx, ts``).
    split : Split
        A ``time_global`` split (others: skipped with a note).
    users : ndarray of int64
        The evaluation users.
    k : int
    days : float
        ``eval.horizon_days``.
    n_resamples, seed : int
        Bootstrap of the model's interval.
    notes : list of str, optional
        Why the task was skipped is appended here.

    Returns
    -------
    dict of str to float
        ``horizon.days``, ``horizon.n_users``, ``horizon.ndcg@k`` (with ``.ci_low`` / ``.ci_high``),
        ``horizon.recall@k`` and ``baseline.<name>.horizon.ndcg@k`` / ``recall@k``; empty when skipped.
    """
    from datetime import timedelta

    import polars as pl

    notes = notes if notes is not None else []
    if split.method != "time_global" or split.cutoff is None:
        notes.append(f"future-window task skipped: it needs one global cut-off (split.method = 'time_global'), "
                     f"this run used {split.method!r}")
        return {}
    inter = interactions.filter((pl.col("ts") >= split.cutoff) & (pl.col("ts") < split.cutoff + timedelta(days=days)))
    window = split.test.copy().tocsr()
    codes = inter["user_idx"].to_numpy() * window.shape[1] + inter["item_idx"].to_numpy()
    rows = np.repeat(np.arange(window.shape[0]), np.diff(window.indptr))
    mask = np.isin(rows.astype(np.int64) * window.shape[1] + window.indices, codes)
    window.data = np.where(mask, window.data, 0).astype(window.data.dtype)
    window.eliminate_zeros()
    users = users[window[users].getnnz(axis=1) > 0]
    out: dict[str, float] = {"horizon.days": days, "horizon.n_users": int(len(users))}
    if len(users) == 0:
        notes.append(f"future-window task: no evaluation user has a test positive in the first {days} days after "
                     "the cut-off")
        return out
    ndcg, recall = keys.at("ndcg", k), keys.at("recall", k)
    for name, (uv, iv) in candidates.items():
        values, _ = per_user_metrics(uv, iv, window, users=users, exclude=split.train_seen, k=k)
        head = keys.prefix(name) + "horizon."
        out[head + ndcg] = float(np.mean(values[ndcg]))
        out[head + recall] = float(np.mean(values[recall]))
        if name == keys.MODEL:
            lo, hi = bootstrap_ci(values[ndcg], n_resamples=n_resamples, seed=seed)
            low_key, high_key = keys.ci(head + ndcg)
            out.update({low_key: float(lo), high_key: float(hi)})
    return out


def validation_scorer(validation: sp.csr_matrix, users: np.ndarray, *, exclude: sp.csr_matrix | None, k: int
                      ) -> Callable[[np.ndarray, np.ndarray], float] | None:
    """A scorer of vectors on a validation slice, for early stopping and the baselines' hyper-parameters.

    Parameters
    ----------
    validation : csr_matrix of shape (n_users, n_items)
        Validation positives.
    users : ndarray of int64
        The (sampled) validation users.
    exclude : csr_matrix or None
        Items never recommended (the fit part's seen items).
    k : int

    Returns
    -------
    callable or None
        ``score(user_vecs, item_vecs) -> NDCG@k`` averaged over ``users``; None without any user.
    """
    if len(users) == 0:
        return None

    def score(user_vecs: np.ndarray, item_vecs: np.ndarray) -> float:
        items, _ = top_k(user_vecs, item_vecs, k, users=users, exclude=exclude)
        return ranking_metrics(items, users, validation, k)[keys.at("ndcg", k)]
    return score


def candidates(vectors: dict[str, tuple[np.ndarray, np.ndarray]], train: sp.csr_matrix, *, popularity: bool
               ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The models to evaluate, in report order: the model (``hybrid``), most-popular, then the other vectors.

    Parameters
    ----------
    vectors : dict of str to (user_vecs, item_vecs)
        ``hybrid`` and the baselines' vectors (``Retrain.vectors``).
    train : csr_matrix of shape (n_users, n_items)
        Training positives (most-popular's counts).
    popularity : bool
        Include most-popular (:func:`popularity_vectors`).

    Returns
    -------
    dict of str to (user_vecs, item_vecs)
        ``model`` first (the hybrid), then ``popularity`` when asked, then every other vector pair by name.
    """
    out = {keys.MODEL: vectors["hybrid"]}
    if popularity:
        out["popularity"] = popularity_vectors(train)
    out.update({name: v for name, v in vectors.items() if name != "hybrid"})
    return out


def per_user_table(per_user: dict[str, dict[str, np.ndarray]], user_ids: np.ndarray) -> pl.DataFrame:
    """Per-user metrics of every model as one frame (``per_user_metrics.parquet``).

    Parameters
    ----------
    per_user : dict of str to dict of str to ndarray
        Per model, every metric per user (:attr:`EvaluationResult.per_user`, plus ``production`` once re-scored).
    user_ids : ndarray of shape (n_users,)
        External ids of the evaluated users, in the same order.

    Returns
    -------
    pl.DataFrame
        ``model, user_id, <metric>...``: one row per (model, evaluated user).
    """
    return pl.concat([pl.DataFrame({"model": [name] * len(user_ids), "user_id": user_ids, **values})
                      for name, values in per_user.items()])
