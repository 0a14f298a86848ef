"""The ranking stage end to end, evaluated like a model on the same test users.

Learning happens on the validation slice only: the generators are refit on the fit part
(:func:`recsys_lab.ranking.candidates.as_of_validation`), the blend weights and the ranker are chosen on the
validation positives, features are built as of the fit part. The test phase uses the final generators (fit on all
training data) and features as of the training cut-off. Keys (:data:`PREFIXES`): ``blend.<metric>`` and
``ranker.<metric>`` with ``.ci_low`` / ``.ci_high``; ``blend.vs.<name>.<metric>`` / ``ranker.vs.<name>.<metric>``:
the paired difference stage - ``<name>`` for the model, every baseline, ``best_single`` (the single model with
the highest test NDCG@k) and, for the ranker, ``blend`` (the ranker must beat it to be worth its cost);
``rank.recall_ceiling[.<generator>]`` (the share of test positives among the candidates, in total and each
generator's top-N), ``rank.n.<generator>`` (its N), ``rank.n_items`` (the catalogue), ``rank.candidates_per_user``,
``rank.validation_fit_seconds`` (the generators refit before the validation slice), ``blend.weight.<generator>``,
``blend.validation.ndcg@k``, ``blend.fit_seconds`` (the weight search), ``ranker.validation.ndcg@k``,
``ranker.best_iteration``, ``ranker.fit_seconds`` (candidates, features and LightGBM on validation),
``ranker.latency_ms.p50`` / ``p99`` (candidates + features + ranker for one user at a time);
``rank.serve_skipped`` (1: ``rank.serve = "blend"`` but the blend's vectors exceed :data:`MAX_SERVED_BYTES`, so the
run serves the model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.config import Config
from recsys_lab.errors import ModelError
from recsys_lab.evaluation import keys
from recsys_lab.evaluation.gate import BEST_SINGLE
from recsys_lab.evaluation.intervals import bootstrap_ci, paired_difference
from recsys_lab.evaluation.ranking import candidates as single_models
from recsys_lab.evaluation.ranking import (
    per_user_metrics,
    ranking_metrics,
    sample_users,
)
from recsys_lab.ranking.blend import blend_vectors, choose_weights
from recsys_lab.ranking.candidates import (
    CandidateSet,
    as_of_validation,
    generate,
    labels,
    recall_ceiling,
)
from recsys_lab.ranking.features import AsOf, as_of, pair_features
from recsys_lab.ranking.ranker import Ranker, fit_ranker

__all__ = ["RankingResult", "PREFIXES", "BEST_SINGLE", "MAX_SERVED_BYTES", "run_stage", "rank_users", "stage_metrics"]

PREFIXES = ("blend", "ranker")
"""Key prefixes of the stage's two second stages."""

MAX_SERVED_BYTES = 1 << 30
"""Largest blend (user and item vectors, float32) a run saves to serve (``rank.serve = "blend"``): 1 GiB. EASE's
vectors are min(users, items) wide: with EASE, ML-100k's blend takes 13 MB, 10k users x 10k items ~0.8 GiB."""

# BEST_SINGLE ("best_single"): in ``vs.`` keys of the stage, the single model (the model or a baseline) with the
# highest test NDCG@k; the gate's ``not_worse_than`` uses the same name for the best baseline.


@dataclass
class RankingResult:
    """What :func:`run_stage` returns.

    Attributes
    ----------
    metrics : dict of str to float
        The ``blend.*``, ``ranker.*`` and ``rank.*`` keys.
    per_user : dict of str to dict of str to ndarray
        ``blend`` and ``ranker`` per-user metrics, in the evaluation's user order.
    weights : dict of str to float
        The blend weights chosen on validation; ``grid``: every weight vector tried.
    ceiling : dict of str to float
        Test recall ceiling of the candidates, ``total`` and per generator.
    best_single : str
        The single model ``vs.best_single`` compares with.
    ranker : Ranker or None
    served : (user_vecs, item_vecs) or None
        The blend's vectors evaluated on the test split, float32, kept only when ``rank.serve = "blend"`` (what
        :meth:`recsys_lab.pipeline.Retrain.save` writes as ``artifacts/blend.npz``).
    notes : list of str
    """

    metrics: dict[str, float] = field(default_factory=dict)
    per_user: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    grid: list[dict] = field(default_factory=list)
    ceiling: dict[str, float] = field(default_factory=dict)
    best_single: str = ""
    ranker: Ranker | None = None
    served: tuple[np.ndarray, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)

    def table(self) -> pl.DataFrame:
        """The best single model, the blend and the ranker side by side (the notebook's and the report's view).

        Returns
        -------
        pl.DataFrame
            ``stage`` (Utf8), ``ndcg@k``, ``ci_low``, ``ci_high``, ``vs_best_single``, ``vs_ci_low``, ``vs_ci_high``
            (Float64; the paired difference with :attr:`best_single`, 0 on its own row) and ``recall_ceiling``
            (the candidates', on the ranker's row); one row per stage that ran.
        """
        m, rows = self.metrics, []
        metric = next((key.removeprefix("blend.") for key in m if key.startswith("blend.ndcg@")
                       and key.count(".") == 1), "ndcg@10")
        for stage in PREFIXES:
            key, vs = f"{stage}.{metric}", f"{stage}." + keys.vs(BEST_SINGLE, metric)
            if key in m:
                rows.append({"stage": stage, metric: m[key], "ci_low": m[keys.ci(key)[0]], "ci_high": m[keys.ci(key)[1]],
                             "vs_best_single": m[vs], "vs_ci_low": m[keys.ci(vs)[0]], "vs_ci_high": m[keys.ci(vs)[1]],
                             "recall_ceiling": m.get("rank.recall_ceiling") if stage == "ranker" else None})
        return pl.DataFrame(rows, schema={"stage": pl.Utf8, metric: pl.Float64, "ci_low": pl.Float64,
                                          "ci_high": pl.Float64, "vs_best_single": pl.Float64, "vs_ci_low": pl.Float64,
                                          "vs_ci_high": pl.Float64, "recall_ceiling": pl.Float64})


def _blend_feature(X: np.ndarray, names: list[str], weights: dict[str, float]) -> np.ndarray:
    """The blend's score of every pair from the features' z-scores."""
    return np.zeros(len(X), np.float32) + sum(w * X[:, names.index(f"{g}.z")] for g, w in weights.items()
                                               if w and f"{g}.z" in names)


def _features(cands: CandidateSet, gens: dict, at: AsOf, weights: dict[str, float]) -> tuple[np.ndarray, list[str]]:
    X, names = pair_features(cands, gens, at)
    return np.column_stack([X, _blend_feature(X, names, weights)]).astype(np.float32), names + ["blend.score"]


def rank_users(users: np.ndarray, gens: dict[str, tuple[np.ndarray, np.ndarray]], n: dict[str, int], at: AsOf,
               ranker: Ranker, weights: dict[str, float], *, k: int) -> np.ndarray:
    """The ranker's top-k of each user (the serving path: candidates, features, ranker).

    Parameters
    ----------
    users : ndarray of int64
    gens : dict of str to (user_vecs, item_vecs)
        The final generators.
    n : dict of str to int
        ``rank.candidates``.
    at : AsOf
        Features as of the training cut-off; its ``seen`` items are excluded.
    ranker : Ranker
    weights : dict of str to float
        Blend weights (the ``blend.score`` feature).
    k : int

    Returns
    -------
    ndarray of shape (n_users, k), int64
        Best first; ``n_items`` (no item) where a user has fewer than k candidates.
    """
    cands = generate(gens, n, users, exclude=at.seen)
    X, _ = _features(cands, gens, at, weights)
    score = ranker.predict(X)
    order = np.lexsort((-score, cands.row))
    row, item = cands.row[order], cands.item[order]
    start = np.searchsorted(row, np.arange(len(users)))
    pos = np.arange(len(row)) - start[row]
    out = np.full((len(users), k), at.seen.shape[1], np.int64)
    keep = pos < k
    out[row[keep], pos[keep]] = item[keep]
    return out


def stage_metrics(name: str, values: dict[str, np.ndarray], singles: dict[str, dict[str, np.ndarray]], *, k: int,
                  best: str, n_resamples: int, seed: int) -> dict[str, float]:
    """``<name>.<metric>`` with intervals and ``<name>.vs.<single>.<ndcg|recall>@k`` paired differences.

    Parameters
    ----------
    name : str
        ``blend`` or ``ranker``.
    values : dict of str to ndarray
        Per-user metrics of the stage.
    singles : dict of str to dict of str to ndarray
        Per-user metrics of what the stage is compared with: the model, every baseline (and for the ranker the
        blend); same users, same order.
    k : int
    best : str
        The best single model (also compared with under :data:`BEST_SINGLE`).
    n_resamples, seed : int

    Returns
    -------
    dict of str to float
    """
    out: dict[str, float] = {}
    metric_names = list(values)
    low, high = bootstrap_ci(np.column_stack([values[m] for m in metric_names]), n_resamples=n_resamples, seed=seed)
    for j, m in enumerate(metric_names):
        key = f"{name}.{m}"
        out[key] = float(np.nanmean(values[m]))
        out.update(zip(keys.ci(key), (float(low[j]), float(high[j]))))
    for other in [*singles, BEST_SINGLE]:
        ref = singles[best if other == BEST_SINGLE else other]
        for m in (keys.at("ndcg", k), keys.at("recall", k)):
            d = paired_difference(values[m], ref[m], n_resamples=n_resamples, seed=seed)
            key = f"{name}." + keys.vs(other, m)
            out.update({key: d["delta"], **dict(zip(keys.ci(key), (d["ci_low"], d["ci_high"])))})
    return out


def run_stage(split: Any, dataset: Any, fits: dict, baseline_fits: dict, vectors: dict, evaluation: Any,
              config: Config) -> RankingResult:
    """Blend and ranker learned on the validation slice, evaluated on the evaluation's test users.

    Parameters
    ----------
    split : recsys_lab.split.Split
    dataset : recsys_lab.features.Dataset
    fits, baseline_fits, vectors : dict
        ``Retrain.fits``, ``Retrain.baseline_fits``, ``Retrain.vectors``.
    evaluation : recsys_lab.evaluation.ranking.EvaluationResult
        Its users and per-user metrics (the single models to compare with).
    config : Config
        ``rank``, ``eval.k``, ``eval.bootstrap``, ``model.seed``.

    Returns
    -------
    RankingResult
    """
    rc, k, seed = config.rank, config.eval.k, config.model.seed
    res, metric = RankingResult(), keys.at("ndcg", k)
    wanted = tuple(dict.fromkeys([*rc.candidates, *rc.blend]))
    final = {g: v for g, v in single_models(vectors, split.train, popularity=True).items() if g in wanted}
    missing = [g for g in wanted if g not in final]
    if missing:
        res.notes.append(f"rank: generators {missing} were not fitted (not in eval.baselines, or skipped: see the "
                         "other warnings): left out")
    n = {g: size for g, size in rc.candidates.items() if g in final}
    users, singles, m = evaluation.users, evaluation.per_user, res.metrics
    res.best_single = max(singles, key=lambda name: float(np.nanmean(singles[name][metric])))
    if n:
        test_cands = generate(final, n, users, exclude=split.train_seen)
        res.ceiling = recall_ceiling(test_cands, split.test)
        m["rank.candidates_per_user"] = float(len(test_cands.row) / max(len(users), 1))
        m.update({"rank.recall_ceiling" + ("" if g == "total" else f".{g}"): v for g, v in res.ceiling.items()})
        m.update({f"rank.n.{g}": float(size) for g, size in n.items()})
        m["rank.n_items"] = float(split.train.shape[1])
    users_val = sample_users(split.validation_users, rc.max_users, seed)
    if len(users_val) == 0:
        res.notes.append("rank: no validation user (split.validation_fraction = 0?): no blend and no ranker")
        return res
    t0 = time.perf_counter()
    uf = (dataset.user_features_at(split.validation_cutoff) if split.validation_cutoff else dataset.user_features).matrix
    val = as_of_validation(split, vectors, fits, baseline_fits, config, features=(uf, dataset.item_features.matrix),
                           names=tuple(final))
    m["rank.validation_fit_seconds"], t0 = time.perf_counter() - t0, time.perf_counter()
    blend_gens = [g for g in rc.blend if g in val]
    if blend_gens:
        res.weights, res.grid = choose_weights({g: val[g] for g in blend_gens}, split.validation, users_val,
                                               exclude=split.fit_seen, k=k, step=rc.blend_step)
        vecs = blend_vectors(final, res.weights)
        values, _ = per_user_metrics(*vecs, split.test, users=users, exclude=split.train_seen, k=k)
        if rc.serve == "blend":
            _keep_served(res, vecs)
        res.per_user["blend"] = values
        m.update({f"blend.weight.{g}": float(w) for g, w in res.weights.items()})
        m[f"blend.validation.{metric}"] = max(r["validation"] for r in res.grid)
        m["blend.fit_seconds"] = time.perf_counter() - t0
        m.update(stage_metrics("blend", values, singles, k=k, best=res.best_single, n_resamples=config.eval.bootstrap,
                               seed=seed))
    if rc.ranker and n:
        _learn_ranker(res, split, dataset, final, val, n, users_val, evaluation, config)
    return res


def _keep_served(res: RankingResult, vecs: tuple[np.ndarray, np.ndarray]) -> None:
    """Keep the blend's vectors to serve, unless they are too large to save (a note and ``rank.serve_skipped``)."""
    size = sum(v.nbytes for v in vecs)
    res.metrics["rank.serve_skipped"] = float(size > MAX_SERVED_BYTES)
    if size > MAX_SERVED_BYTES:
        res.notes.append(f"rank.serve = 'blend': the blend's vectors take {size / 2**20:,.1f} MiB ({len(vecs[0])} "
                         f"users and {len(vecs[1])} items x {vecs[1].shape[1]} dims), over the limit of "
                         f"{MAX_SERVED_BYTES / 2**20:,.1f} MiB: not saved, the run serves the model")
    else:
        res.served = vecs


def _learn_ranker(res: RankingResult, split: Any, dataset: Any, final: dict, val: dict, n: dict[str, int],
                  users_val: np.ndarray, evaluation: Any, config: Config) -> None:
    """Fit the ranker on the validation candidates, evaluate it on the test users, time it per user (in ``res``)."""
    rc, k, seed, m = config.rank, config.eval.k, config.model.seed, res.metrics
    users, metric, t0 = evaluation.users, keys.at("ndcg", k), time.perf_counter()
    text = dataset.interactions.select("user_idx", "item_idx", "ts")
    side = {"item_features": dataset.item_features.matrix, "item_tokens": dataset.item_features.tokens}
    val_cands = generate(val, n, users_val, exclude=split.fit_seen)
    m["rank.validation.recall_ceiling"] = recall_ceiling(val_cands, split.validation)["total"]
    X, names = _features(val_cands, val, as_of(split.fit_seen, split.fit, text, **side), res.weights)
    try:
        res.ranker = fit_ranker(X, labels(val_cands, split.validation), val_cands.group_sizes, names, rc, k=k,
                                seed=seed)
    except ModelError as exc:
        res.notes.append(f"rank: no ranker: {exc}")
        return
    m["ranker.fit_seconds"] = time.perf_counter() - t0
    at_test = as_of(split.train_seen, split.train, text, **side)
    top = rank_users(users, final, n, at_test, res.ranker, res.weights, k=k)
    padded = sp.hstack([split.test, sp.csr_matrix((split.test.shape[0], 1), dtype=split.test.dtype)]).tocsr()
    values = ranking_metrics(top, users, padded, k, per_user=True)
    res.per_user["ranker"] = values
    m.update({f"ranker.validation.{metric}": res.ranker.validation, "ranker.best_iteration": res.ranker.best_iteration})
    others = {**evaluation.per_user, **({"blend": res.per_user["blend"]} if "blend" in res.per_user else {})}
    m.update(stage_metrics("ranker", values, others, k=k, best=res.best_single,
                           n_resamples=config.eval.bootstrap, seed=seed))
    if rc.latency_users:
        took = []
        for u in sample_users(users, rc.latency_users, seed):
            t = time.perf_counter()
            rank_users(np.array([u]), final, n, at_test, res.ranker, res.weights, k=k)
            took.append((time.perf_counter() - t) * 1000)
        m["ranker.latency_ms.p50"], m["ranker.latency_ms.p99"] = map(float, np.percentile(took, [50, 99]))
