"""Cold start measured: taste onboarding of cold users and the fold-in-vs-retrain comparison of warm users.

The fold-in itself is :mod:`recsys_lab.models.foldin`; this module evaluates it with the library's own ranking
metrics (:func:`recsys_lab.evaluation.ranking.ranking_metrics`), top-k (:func:`recsys_lab.retrieval.topk.top_k`)
and paired intervals (:func:`recsys_lab.evaluation.intervals.paired_difference`).

Cold users are those without any training interaction (``split.train_seen`` row empty); their test positives
in time order are the onboarding picks then the targets (:func:`onboarding_curve`). Warm users are folded in
from their most recent training positives and compared with the full retrain's vectors and most-popular
(:func:`retrain_recovery`). :func:`cold_start_metrics` runs both with flat ``metrics.json`` keys;
:func:`evaluate_cold_start` is the per-retrain call on a dataset's interactions and a split.

Example::

    result = cold_start.evaluate_cold_start(job.dataset.interactions, job.split, *job.vectors["hybrid"],
                                            positive_threshold=weights.positive_threshold(job.config.data), k=job.config.eval.k)
    result.metrics     # cold.foldin.ndcg@10@n5, cold.diff.ndcg@10@n5.ci_low, warm.retrain.ndcg@10, ...
    plots.onboarding_curve(result.onboarding)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys_lab.errors import DataError
from recsys_lab.evaluation import keys
from recsys_lab.evaluation.intervals import paired_difference
from recsys_lab.evaluation.ranking import ranking_metrics, sample_users
from recsys_lab.evaluation.histories import Histories
from recsys_lab.models.foldin import FoldIn, average_user
from recsys_lab.retrieval.topk import top_k

__all__ = ["NS", "OnboardingResult", "onboarding_curve", "RecoveryResult", "retrain_recovery",
           "cold_start_metrics", "cold_start_from_split", "ColdStartResult", "evaluate_cold_start"]

NS = (0, 1, 3, 5, 10)
"""Default onboarding sizes: numbers of positives given to each cold user before ranking the rest."""


def _ndcg_recall(ranked: np.ndarray, targets: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row NDCG@k and recall@k of ``ranked`` against the rows of ``targets`` (each with >= 1 positive)."""
    values = ranking_metrics(ranked, np.arange(targets.shape[0]), sp.csr_matrix(targets), k, per_user=True)
    return values[keys.at("ndcg", k)], values[keys.at("recall", k)]


def _rank(user_vecs: np.ndarray, item_vecs: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k item indices (n, k) per row, excluded items never first."""
    return top_k(np.asarray(user_vecs, np.float32), np.asarray(item_vecs, np.float32), k,
                 exclude=sp.csr_matrix(exclude))[0]


def _check_pop(popularity: np.ndarray, n_items: int) -> np.ndarray:
    pop = np.asarray(popularity, dtype=np.float32).ravel()
    if len(pop) != n_items:
        raise DataError(f"popularity: expected {n_items} values (one per item), got {len(pop)}")
    return pop


def _mean(v: np.ndarray) -> float:
    return float(v.mean()) if len(v) else float("nan")


@dataclass
class OnboardingResult:
    """Per-user metrics of fold-in and most-popular after onboarding with n items.

    Attributes
    ----------
    k : int
    per_n : dict
        ``per_n[n]`` is a dict of equal-length arrays over the users evaluated at that n: ``users`` (int64,
        internal indices), ``foldin.ndcg``, ``popularity.ndcg``, ``foldin.recall``, ``popularity.recall``
        (float64), ``n_targets`` (int64).
    """

    k: int
    per_n: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Flat means: ``foldin.ndcg@{k}@n{n}``, ``popularity.ndcg@{k}@n{n}``, ``...recall@...``, ``n_users@n{n}``.

        Returns
        -------
        dict of str to float
            Means over the users evaluated at each ``n`` (NaN when there are none); ``n_users@n{n}`` is an int.
        """
        out: dict[str, float] = {}
        for n, d in self.per_n.items():
            for name in ("foldin", "popularity"):
                for metric in ("ndcg", "recall"):
                    out[keys.onboarded(keys.at(f"{name}.{metric}", self.k), n)] = _mean(d[f"{name}.{metric}"])
            out[keys.onboarded("n_users", n)] = int(len(d["users"]))
        return out

    def difference(self, n: int, metric: str = "ndcg", *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
        """Fold-in minus popularity at ``n``, paired over users (:func:`recsys_lab.evaluation.intervals.paired_difference`).

        Parameters
        ----------
        n : int
            Number of onboarding positives (a key of ``per_n``).
        metric : str
            ``ndcg`` (default) or ``recall``.
        n_boot : int
            Bootstrap resamples (default 2000).
        seed : int
            Seed of the resampling.

        Returns
        -------
        dict
            ``delta``, ``ci_low``, ``ci_high`` (95 % interval; NaN without users), ``significant``, ``relative``
            and ``n_users``.
        """
        d = self.per_n[n]
        return paired_difference(d[f"foldin.{metric}"], d[f"popularity.{metric}"], n_resamples=n_boot, seed=seed)

    def table(self) -> list[dict]:
        """One row per n: ``n, n_users, foldin, popularity, diff, ci_low, ci_high`` (NDCG@k; interval of the
        difference).

        Returns
        -------
        list of dict
            One dict per ``n``, in the order of ``per_n``; NaN means when no user was evaluated.
        """
        rows = []
        for n, d in self.per_n.items():
            diff = self.difference(n)
            rows.append({"n": n, "n_users": diff["n_users"], "foldin": _mean(d["foldin.ndcg"]),
                         "popularity": _mean(d["popularity.ndcg"]), "diff": diff["delta"],
                         "ci_low": diff["ci_low"], "ci_high": diff["ci_high"]})
        return rows


def onboarding_curve(item_vecs: np.ndarray, popularity: np.ndarray, histories: Histories, *,
                     ns: tuple[int, ...] = NS, k: int = keys.DEFAULT_K, foldin: FoldIn | None = None,
                     base: np.ndarray | None = None) -> OnboardingResult:
    """Taste-onboarding evaluation: fold in each user's first n positives, rank the rest.

    For each n in ``ns``, users with at least n + 1 items in ``histories`` are evaluated: their first n
    items are the onboarding picks (folded in; excluded from the candidates of both methods), the remaining
    items are the targets. Fold-in with n = 0 is ``[base, 1]``, or popularity itself when ``base`` is None.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded item vectors ``[i, b_i]``.
    popularity : ndarray of shape (n_items,)
        Most-popular score per item (e.g. training positives per item); ties keep index order.
    histories : Histories
        Each cold user's positives in time order (e.g. test positives).
    ns : tuple of int
        Onboarding sizes.
    k : int
        Cut-off of NDCG@k and recall@k.
    foldin : FoldIn, optional
        Default ``FoldIn(item_vecs)`` (default method).
    base : ndarray of shape (len(histories.users), d or d + 1), optional
        Feature part per user (same order as ``histories.users``).

    Returns
    -------
    OnboardingResult
        Per-user values per n (for paired intervals) and :meth:`OnboardingResult.means`.
    """
    item_vecs = np.asarray(item_vecs, dtype=np.float32)
    n_items = len(item_vecs)
    pop = _check_pop(popularity, n_items)
    fold = foldin or FoldIn(item_vecs)
    lengths = histories.lengths
    result = OnboardingResult(k=k)
    for n in ns:
        rows = np.flatnonzero(lengths >= n + 1)
        z = np.zeros(len(rows), np.int64)
        onboard = histories.window(rows, z, z + n, n_items)
        targets = histories.window(rows, z + n, lengths[rows], n_items)
        user_base = None if base is None else np.asarray(base)[rows]
        pop_ranked = _rank(np.ones((len(rows), 1), np.float32), pop[:, None], onboard, k)
        if n == 0 and user_base is None:
            fold_ranked = pop_ranked
        else:
            fold_ranked = _rank(fold.users(onboard, base=user_base), item_vecs, onboard, k)
        f_ndcg, f_rec = _ndcg_recall(fold_ranked, targets, k)
        p_ndcg, p_rec = _ndcg_recall(pop_ranked, targets, k)
        result.per_n[n] = {"users": histories.users[rows], "foldin.ndcg": f_ndcg, "popularity.ndcg": p_ndcg,
                           "foldin.recall": f_rec, "popularity.recall": p_rec,
                           "n_targets": targets.getnnz(axis=1).astype(np.int64)}
    return result


@dataclass
class RecoveryResult:
    """Warm users: fold-in of recent training items vs the full retrain's user vector vs most-popular.

    Attributes
    ----------
    k : int
    users : ndarray of int64, shape (n,)
    ndcg : dict of str -> ndarray of shape (n,), float64
        Per-user NDCG@k of ``"foldin"``, ``"retrain"`` and ``"popularity"`` on the test positives.
    """

    k: int
    users: np.ndarray
    ndcg: dict[str, np.ndarray]

    def means(self) -> dict[str, float]:
        """``foldin.ndcg@k``, ``retrain.ndcg@k``, ``popularity.ndcg@k``, ``recovered`` and ``n_users``.

        ``recovered = (foldin - popularity) / (retrain - popularity)`` of the means: the share of the
        retrain's gain over most-popular that fold-in gets without retraining (NaN if the retrain gains
        nothing).

        Returns
        -------
        dict of str to float
            The three NDCG means (NaN without users), ``recovered`` and ``n_users`` (an int).
        """
        m = {keys.at(f"{name}.ndcg", self.k): _mean(v) for name, v in self.ndcg.items()}
        fold, retrain, pop = (m[keys.at(f"{name}.ndcg", self.k)] for name in ("foldin", "retrain", "popularity"))
        gain = retrain - pop
        m["recovered"] = (fold - pop) / gain if gain > 0 else float("nan")
        m["n_users"] = int(len(self.users))
        return m

    def difference(self, a: str = "foldin", b: str = "retrain", *, n_boot: int = 2000, seed: int = 0
                   ) -> dict[str, float]:
        """``a`` minus ``b`` (per-user NDCG@k), paired (:func:`recsys_lab.evaluation.intervals.paired_difference`).

        Parameters
        ----------
        a, b : str
            Keys of ``ndcg``: ``foldin``, ``retrain`` or ``popularity`` (default ``foldin`` minus ``retrain``).
        n_boot : int
            Bootstrap resamples (default 2000).
        seed : int
            Seed of the resampling.

        Returns
        -------
        dict
            ``delta``, ``ci_low``, ``ci_high`` (NaN without users), ``significant``, ``relative``, ``n_users``.
        """
        return paired_difference(self.ndcg[a], self.ndcg[b], n_resamples=n_boot, seed=seed)


def retrain_recovery(item_vecs: np.ndarray, user_vecs: np.ndarray, popularity: np.ndarray, history: Histories,
                     test: sp.csr_matrix, exclude: sp.csr_matrix, *, last: int | None = 10, k: int = keys.DEFAULT_K,
                     foldin: FoldIn | None = None) -> RecoveryResult:
    """How much of a retrain an update recovers, on warm users.

    Each user of ``history`` is folded in from their ``last`` most recent training positives (all when None)
    and ranked against the full retrain's vector and most-popular, on the same candidates (``exclude`` removed)
    and test positives.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
    user_vecs : ndarray of shape (n_users, d + 1), float32
        The retrain's folded user vectors, indexed by internal user index.
    popularity : ndarray of shape (n_items,)
    history : Histories
        Training positives in time order of the users to evaluate (each needs >= 1 test positive).
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    exclude : csr_matrix of shape (n_users, n_items)
        Items never recommended (the split's ``train_seen``).
    last : int or None
        Most recent training items folded in (default 10).
    k : int
    foldin : FoldIn, optional

    Returns
    -------
    RecoveryResult
    """
    item_vecs = np.asarray(item_vecs, dtype=np.float32)
    n_items = len(item_vecs)
    pop = _check_pop(popularity, n_items)
    fold = foldin or FoldIn(item_vecs)
    keep = np.flatnonzero((history.lengths > 0) & (test[history.users].getnnz(axis=1) > 0))
    users = history.users[keep]
    lengths = history.lengths[keep]
    start = np.zeros(len(keep), np.int64) if last is None else np.maximum(lengths - last, 0)
    recent = history.window(keep, start, lengths, n_items)
    excl = sp.csr_matrix(exclude)[users]
    tgt = sp.csr_matrix(test)[users]
    vecs = {"foldin": fold.users(recent), "retrain": np.asarray(user_vecs, np.float32)[users]}
    ndcg = {name: _ndcg_recall(_rank(u, item_vecs, excl, k), tgt, k)[0] for name, u in vecs.items()}
    ndcg["popularity"] = _ndcg_recall(_rank(np.ones((len(users), 1), np.float32), pop[:, None], excl, k), tgt, k)[0]
    return RecoveryResult(k=k, users=users, ndcg=ndcg)


def cold_start_metrics(item_vecs: np.ndarray, user_vecs: np.ndarray, popularity: np.ndarray, *,
                       user_idx: np.ndarray, item_idx: np.ndarray, ts: np.ndarray, positive: np.ndarray,
                       is_test: np.ndarray, cold_users: np.ndarray, warm_users: np.ndarray, test: sp.csr_matrix,
                       exclude: sp.csr_matrix, ns: tuple[int, ...] = NS, k: int = keys.DEFAULT_K, last: int = 10,
                       foldin: FoldIn | None = None, n_boot: int = 2000, seed: int = 0
                       ) -> tuple[dict[str, float], OnboardingResult, RecoveryResult]:
    """The cold-start measurement in one call, with flat metric names for ``metrics.json``.

    Parameters
    ----------
    item_vecs, user_vecs : ndarray, shapes (n_items, d + 1) and (n_users, d + 1), float32
        The retrain's folded vectors.
    popularity : ndarray of shape (n_items,)
        Most-popular score (training positives per item).
    user_idx, item_idx, ts : ndarray of shape (n_rows,)
        Interaction columns (``Dataset.interactions``: ``user_idx, item_idx, ts``).
    positive : ndarray of bool, shape (n_rows,)
        ``weight >= positive_threshold``.
    is_test : ndarray of bool, shape (n_rows,)
        Whether each row is a test interaction (not in ``split.train_seen``).
    cold_users : ndarray of int64
        Users without any training interaction (``split.train_seen.getnnz(axis=1) == 0``).
    warm_users : ndarray of int64
        ``split.warm_test_users``.
    test, exclude : csr_matrix of shape (n_users, n_items)
        ``split.test`` and ``split.train_seen`` (warm comparison only).
    ns, k : onboarding sizes and cut-off.
    last : int
        Warm users are folded in from their ``last`` most recent training positives.
    foldin : FoldIn, optional
        Default: the default method with the average trained user as prior (:func:`recsys_lab.models.foldin.average_user`
        over the users with training positives), as serving folds.
    n_boot, seed : int
        Bootstrap resamples and seed of the paired intervals.

    Returns
    -------
    metrics : dict
        ``cold.foldin.ndcg@{k}@n{n}``, ``cold.popularity.ndcg@{k}@n{n}`` (and ``recall``),
        ``cold.diff.ndcg@{k}@n{n}`` with ``.ci_low`` / ``.ci_high`` (95 % paired bootstrap), ``cold.n_users@n{n}``,
        and ``warm.foldin_last{last}.ndcg@{k}``, ``warm.retrain.ndcg@{k}``, ``warm.popularity.ndcg@{k}``,
        ``warm.foldin_recovered``, ``warm.n_users``.
    onboarding : OnboardingResult
    recovery : RecoveryResult
    """
    pos_test = np.asarray(positive, bool) & np.asarray(is_test, bool)
    pos_train = np.asarray(positive, bool) & ~np.asarray(is_test, bool)
    u, it, t = np.asarray(user_idx), np.asarray(item_idx), np.asarray(ts)
    hist = Histories.from_arrays(u[pos_test], it[pos_test], t[pos_test], users=np.asarray(cold_users, np.int64))
    if foldin is None:
        trained = np.unique(u[pos_train]).astype(np.int64)
        foldin = FoldIn(item_vecs, prior=average_user(user_vecs, trained) if len(trained) else None)
    onboarding = onboarding_curve(item_vecs, popularity, hist, ns=ns, k=k, foldin=foldin)
    out: dict[str, float] = {}
    for n, d in onboarding.per_n.items():
        for name in ("foldin", "popularity"):
            for metric in ("ndcg", "recall"):
                out[keys.onboarded(keys.at(f"cold.{name}.{metric}", k), n)] = _mean(d[f"{name}.{metric}"])
        diff = onboarding.difference(n, n_boot=n_boot, seed=seed)
        key = keys.onboarded(keys.at("cold.diff.ndcg", k), n)
        low, high = keys.ci(key)
        out.update({key: diff["delta"], low: diff["ci_low"], high: diff["ci_high"],
                    keys.onboarded("cold.n_users", n): diff["n_users"]})
    wh = Histories.from_arrays(u[pos_train], it[pos_train], t[pos_train], users=np.asarray(warm_users, np.int64))
    recovery = retrain_recovery(item_vecs, user_vecs, popularity, wh, test, exclude, last=last, k=k, foldin=foldin)
    rm = recovery.means()
    out.update({keys.at(f"warm.foldin_last{last}.ndcg", k): rm[keys.at("foldin.ndcg", k)],
                keys.at("warm.retrain.ndcg", k): rm[keys.at("retrain.ndcg", k)],
                keys.at("warm.popularity.ndcg", k): rm[keys.at("popularity.ndcg", k)],
                "warm.foldin_recovered": rm["recovered"], "warm.n_users": rm["n_users"]})
    return out, onboarding, recovery


def cold_start_from_split(interactions, split, user_vecs: np.ndarray, item_vecs: np.ndarray, *,  # noqa: ANN001
                          positive_threshold: float, ns: tuple[int, ...] = NS, k: int = keys.DEFAULT_K,
                          last: int = 10, foldin: FoldIn | None = None
                          ) -> tuple[dict[str, float], OnboardingResult, RecoveryResult]:
    """:func:`cold_start_metrics` from a dataset's interactions frame and a :class:`recsys_lab.split.Split`
    (every user; test rows are those at or after ``split.cutoff``).

    Parameters
    ----------
    interactions : DataFrame
        ``Dataset.interactions`` (columns ``user_idx, item_idx, weight, ts``; anything whose columns have
        ``to_numpy()``, e.g. Polars).
    split : Split
        Its ``cutoff``, ``train`` (popularity), ``train_seen`` (cold users: no training interaction at all;
        warm exclusions), ``test`` and ``warm_test_users`` are used.
    user_vecs, item_vecs : ndarray
        The retrain's folded vectors (``Retrain.vectors["hybrid"]``).
    positive_threshold : float
        The positive threshold in force (:func:`recsys_lab.data.weights.positive_threshold`).
    ns, k, last, foldin
        As in :func:`cold_start_metrics`.

    Returns
    -------
    metrics : dict of str to float
        As :func:`cold_start_metrics`.
    onboarding : OnboardingResult
        Per-user results of the cold users, per ``n``.
    recovery : RecoveryResult
        Per-user results of the warm users.
    """
    ts = interactions["ts"].to_numpy()
    cutoff = np.datetime64(split.cutoff.replace(tzinfo=None)) if getattr(split.cutoff, "tzinfo", None) else split.cutoff
    if np.issubdtype(ts.dtype, np.datetime64):
        cutoff = np.datetime64(cutoff).astype(ts.dtype)
    return cold_start_metrics(
        item_vecs, user_vecs, np.asarray(split.train.sum(axis=0)).ravel(),
        user_idx=interactions["user_idx"].to_numpy(), item_idx=interactions["item_idx"].to_numpy(), ts=ts,
        positive=interactions["weight"].to_numpy() >= positive_threshold, is_test=ts >= cutoff,
        cold_users=np.flatnonzero(split.train_seen.getnnz(axis=1) == 0), warm_users=split.warm_test_users,
        test=split.test, exclude=split.train_seen, ns=ns, k=k, last=last, foldin=foldin)


@dataclass
class ColdStartResult:
    """The cold-start step of a retrain.

    Attributes
    ----------
    metrics : dict of str to float
        ``cold.*`` and ``warm.*`` keys (see :func:`cold_start_metrics`).
    onboarding : OnboardingResult
        Cold users per onboarding size (``onboarding.table()`` feeds :func:`recsys_lab.report.plots.onboarding_curve`).
    recovery : RecoveryResult
        Warm users: fold-in vs retrain vs most-popular.
    """

    metrics: dict[str, float]
    onboarding: OnboardingResult
    recovery: RecoveryResult


def evaluate_cold_start(interactions, split, user_vecs: np.ndarray, item_vecs: np.ndarray, *,  # noqa: ANN001
                        positive_threshold: float, warm_users: np.ndarray | None = None, max_users: int = 0,
                        ns: tuple[int, ...] = NS, k: int = keys.DEFAULT_K, last: int = 10, n_boot: int = 2000,
                        seed: int = 0) -> ColdStartResult:
    """The per-retrain cold-start measurement on a seeded sample of cold and warm users.

    Cold test users (no training interaction; a seeded sample of at most ``max_users``, as are the warm users)
    are onboarded with their first ``n`` positives in time order, the rest being targets: fold-in (serving's
    path: the default method with the average trained user as prior) against most-popular, per user and
    paired. Warm users: fold-in of their ``last`` most recent training positives against the retrain's vectors.
    Only the sampled users' interactions are read.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``Dataset.interactions`` (``user_idx, item_idx, weight, ts``; ``ts`` may be null: row order is time).
    split : Split
        ``cold_users``, ``warm_test_users``, ``train``, ``train_seen`` and ``test`` are used.
    user_vecs, item_vecs : ndarray of shape (n_users, d + 1) and (n_items, d + 1), float32
        The retrain's folded vectors.
    positive_threshold : float
        The positive threshold in force (:func:`recsys_lab.data.weights.positive_threshold`).
    warm_users : ndarray of int64, optional
        Warm users to sample from (default ``split.warm_test_users``; a retrain passes its evaluation users).
    max_users : int
        Sample size of each group (``eval.cold_max_users``; 0: all).
    ns, k, last : see :func:`cold_start_metrics`.
    n_boot, seed : int
        Bootstrap resamples and seed (of the samples and the intervals).

    Returns
    -------
    ColdStartResult
    """
    u, i = user_vecs, item_vecs
    cold = sample_users(split.cold_users, max_users, seed)
    warm = sample_users(split.warm_test_users if warm_users is None else warm_users, max_users, seed)
    wanted = np.zeros(len(u), dtype=bool)
    wanted[cold] = wanted[warm] = True
    user_idx = interactions["user_idx"].to_numpy()
    rows = np.flatnonzero(wanted[user_idx])
    user_idx, item_idx = user_idx[rows], interactions["item_idx"].to_numpy()[rows]
    n_items = split.train_seen.shape[1]
    kept = np.flatnonzero(wanted)
    seen = split.train_seen[kept].tocoo()
    is_test = ~np.isin(user_idx.astype(np.int64) * n_items + item_idx,
                       kept[seen.row].astype(np.int64) * n_items + seen.col)
    ts = interactions["ts"].to_numpy()[rows] if interactions["ts"].null_count() == 0 else rows
    trained = np.flatnonzero(split.train.getnnz(axis=1) > 0)  # serving's prior: the average trained user
    fold = FoldIn(i, prior=average_user(u, trained) if len(trained) else None)
    metrics, onboarding, recovery = cold_start_metrics(
        i, u, np.asarray(split.train.sum(axis=0)).ravel(), user_idx=user_idx, item_idx=item_idx, ts=ts,
        positive=(interactions["weight"].to_numpy()[rows] >= positive_threshold), is_test=is_test,
        cold_users=cold, warm_users=warm, test=split.test, exclude=split.train_seen, ns=ns, k=k, last=last,
        foldin=fold, n_boot=n_boot, seed=seed)
    return ColdStartResult(metrics=metrics, onboarding=onboarding, recovery=recovery)
