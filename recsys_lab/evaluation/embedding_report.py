"""Embeddings as a product: beyond accuracy, fairness, intrinsic and extrinsic quality of one retrain.

:func:`evaluate_embeddings` composes :mod:`recsys_lab.evaluation.beyond`, :mod:`recsys_lab.evaluation.fairness`,
:mod:`recsys_lab.evaluation.embedding_quality`, the future-window task
(:func:`recsys_lab.evaluation.ranking.horizon_metrics`) and the stability against production
(:func:`recsys_lab.evaluation.champion.stability`) into one :class:`EmbeddingReport`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from recsys_lab.retrieval.neighbours import similar_items
from recsys_lab.config import Config
from recsys_lab.evaluation import beyond, champion, fairness, keys
from recsys_lab.evaluation import embedding_quality as embedding
from recsys_lab.evaluation.ranking import EvaluationResult, candidates, horizon_metrics, sample_users
from recsys_lab.features import Dataset
from recsys_lab.retrieval import ann
from recsys_lab.split import Split

__all__ = ["PROBE_MAX_ITEMS", "EmbeddingReport", "evaluate_embeddings"]

PROBE_MAX_ITEMS = 5_000
"""Item probes (one logistic regression per category and fold) use a seeded sample of at most this many of the
``eval.embedding_max_items`` query items: 50 categories x 3 folds on 20,000 items cost ~1 min, on 5,000 ~7 s."""


@dataclass
class EmbeddingReport:
    """Figures of the embeddings step and the details the report draws.

    Attributes
    ----------
    metrics : dict of str to float
        The keys listed in :func:`evaluate_embeddings`.
    details : dict
        ``notes`` (what was skipped and why), ``categories``, ``category_names``, ``item_exposure``,
        ``user_groups``, ``neighbours``, ``neighbour_items``, ``item_probe``, ``user_probes``.
    """

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        """What was skipped and why (also ``details["notes"]``)."""
        return self.details.setdefault("notes", [])


def _user_probes(u: np.ndarray, users: pl.DataFrame, dataset: Dataset, split: Split, config: Config,
                 notes: list[str], details: dict) -> dict[str, float]:
    wanted = config.eval.probe_user
    if wanted is None:
        wanted = tuple(c for c in users.columns if c != "user_id"
                       and (users[c].dtype.is_numeric() or users[c].n_unique() <= 50))
    if not wanted:
        notes.append("no user attribute to probe (the log has no user table)")
        return {}
    active = split.train.getnnz(axis=1) > 0
    out: dict[str, float] = {}
    for column in wanted:
        labels = fairness.user_labels(users, column, dataset.users.to_index, len(dataset.users))
        if labels is None:
            notes.append(f"no user column {column!r}: skipped")
            continue
        if column in set(config.features.user):
            notes.append(f"probe.user.{column}: {column!r} is also a model feature (features.user): the probe "
                         "reads the feature back, not what the embedding learnt")
        rows = active & np.array([x is not None for x in labels])
        r = embedding.probe(u[rows, :-1], labels[rows], seed=config.model.seed)
        details.setdefault("user_probes", {})[column] = r
        out.update({f"probe.user.{column}.{key}": r[key] for key in ("auc", "auc.baseline", "accuracy",
                                                                       "accuracy.baseline", "n")})
    return out


def _item_quality(vectors: dict, served: np.ndarray, sample: np.ndarray, cats: np.ndarray, cat_names: list,
                  config: Config, item_is_feature: bool, notes: list[str], details: dict) -> dict[str, float]:
    """Coherence of served and cosine neighbours, the item probe, and the factor baselines' coherence."""
    cfg, k, seed = config.eval, config.eval.k, config.model.seed
    i = vectors["hybrid"][1]
    coh, chance = embedding.coherence(served, cats, sample)
    cos, _ = embedding.coherence(embedding.cosine_neighbours(i[:, :-1], k, sample), cats, sample)
    coherence_key = keys.at("embedding.item_coherence", k)
    out = {coherence_key: coh, f"{coherence_key}.chance": chance, keys.at("embedding.item_coherence.cosine", k): cos}
    probe_items = sample_users(sample, PROBE_MAX_ITEMS, seed)
    probe = embedding.multilabel_probe(i[probe_items], cats[probe_items], cat_names, seed=seed, n_splits=3)
    details["item_probe"] = probe
    out.update({f"probe.item.{cfg.item_category}.{key}": value for key, value in probe.items()})
    if item_is_feature:
        notes.append(f"{cfg.item_category!r} is an item feature of the model: its item vectors contain "
                     f"the {cfg.item_category} embeddings, so coherence and the item probe read the "
                     "feature back; the factor baselines (baseline.<name>.embedding.*, .probe.*) show "
                     "what interactions alone teach")
    for name, (_, bi) in vectors.items():  # factor baselines: what interactions alone teach
        if name in ("hybrid", "ease") or bi.shape[1] > 1024:  # EASE's vectors are a factored score matrix, not an embedding
            continue
        bcoh, _ = embedding.coherence(embedding.cosine_neighbours(bi, k, sample), cats, sample)
        out[keys.model_key(name, keys.at("embedding.item_coherence.cosine", k))] = bcoh
        if name == "lightfm_cf":  # probes cost ~1 s per category: the same family without features
            bprobe = embedding.multilabel_probe(bi[probe_items], cats[probe_items], cat_names, seed=seed, n_splits=3)
            out[keys.model_key(name, f"probe.item.{cfg.item_category}.auc")] = bprobe["auc"]
    return out


def evaluate_embeddings(dataset: Dataset, split: Split, vectors: dict[str, tuple[np.ndarray, np.ndarray]],
                        evaluation: EvaluationResult, *, items: pl.DataFrame, users: pl.DataFrame, config: Config,
                        index: ann.MipsIndex | None = None, production: champion.RunVectors | None = None,
                        production_note: str | None = None) -> EmbeddingReport:
    """Beyond-accuracy, fairness and embedding-quality figures of a retrain (every key usable as a gate bound).

    Keys (``k = eval.k``; ``<c>`` = ``eval.item_category``, ``<g>`` a column of ``eval.user_groups``):

    - beyond accuracy of the evaluated lists, for the model (plain) and every baseline (``baseline.<name>.``):
      ``novelty@k``, ``ild@k`` (cosine distance in the *model's* item space for every list), ``ild.category@k``,
      ``arp@k``, ``aplt@k``, ``gini@k``, ``coverage@k``;
    - item-side fairness: ``fairness.item.<c>.<group>.exposure|catalog|interactions|ratio`` (model) and
      ``[baseline.<name>.]fairness.item.<c>.exposure_gap``; user-side: ``[baseline.<name>.]fairness.user.<g>.ndcg@k.<group>``
      with ``.ci_low``, ``.ci_high``, ``.n_users``, and ``fairness.user.<g>.ndcg@k.gap``;
    - intrinsic: ``embedding.n_items``, ``embedding.item_coherence@k`` (served neighbours ``e_i·e_j + b_j``),
      ``embedding.item_coherence.cosine@k``, ``...chance``, ``baseline.<name>.embedding.item_coherence.cosine@k``,
      ``baseline.lightfm_cf.probe.item.<c>.auc``; against production: ``embedding.stability@k``,
      ``recs.stability@k``, ``recs.churn@k``, ``embedding.shared_items``, ``recs.shared_users``;
    - extrinsic: ``probe.item.<c>.auc`` (with per-category values), ``probe.user.<attr>.auc`` with ``.baseline``,
      ``.accuracy``, ``.accuracy.baseline``, ``.n``; future window (``time_global`` only): ``horizon.*``.

    Parameters
    ----------
    dataset : Dataset
        Id maps (``users.to_index``, ``items.to_index``) and interactions.
    split : Split
    vectors : dict of str to (user_vecs, item_vecs)
        ``hybrid`` (the model) and every baseline's vectors.
    evaluation : EvaluationResult
        The evaluated users, their lists and per-user metrics.
    items, users : pl.DataFrame
        The snapshot's item and user tables (group labels, probes).
    config : Config
        ``eval.*``, ``features.*`` and ``model.seed`` are read.
    index : MipsIndex, optional
        The retrain's index: served neighbours go through it when given.
    production : RunVectors, optional
        Production's ids and vectors (stability); None skips it with ``production_note``.
    production_note : str, optional
        Why there is no production to compare with.

    Returns
    -------
    EmbeddingReport
    """
    cfg, k, seed = config.eval, config.eval.k, config.model.seed
    out: dict[str, float] = {}
    notes: list[str] = []
    details: dict[str, Any] = {"notes": notes}
    u, i = vectors["hybrid"]
    popularity = np.asarray(split.train.getnnz(axis=0), dtype=np.float64)
    n_train_users = int((split.train.getnnz(axis=1) > 0).sum())
    interactions = np.asarray(split.train.sum(axis=0), dtype=np.float64).ravel()
    cats, cat_names = fairness.item_categories(items, cfg.item_category, dataset.items.to_index, len(dataset.items))
    if cats is None:
        notes.append(f"no item column {cfg.item_category!r} (eval.item_category): category diversity, coherence, "
                     "the item probe and item-side fairness skipped")
    details["categories"], details["category_names"] = cats, cat_names
    groups = {}
    for g in cfg.user_groups:
        groups[g] = fairness.user_labels(users, g, dataset.users.to_index, len(dataset.users))
        if groups[g] is None:
            notes.append(f"no user column {g!r}: skipped")
    for name, lists in evaluation.recommended.items():
        figures = beyond.beyond_accuracy(lists, popularity=popularity, n_users=n_train_users, item_vecs=i[:, :-1],
                                         categories=cats, k=k)
        figures.update(fairness.fairness_figures(
            lists, evaluation.per_user[name][keys.at("ndcg", k)], k=k, categories=cats, category_names=cat_names,
            category_column=cfg.item_category, interactions=interactions,
            user_groups={g: None if labels is None else labels[evaluation.users] for g, labels in groups.items()},
            n_resamples=cfg.bootstrap, seed=seed, details=details if name == keys.MODEL else None))
        out.update({keys.model_key(name, key): value for key, value in figures.items()})
    sample = sample_users(np.arange(len(i)), cfg.embedding_max_items, seed)
    served = (similar_items(index, sample, k)[0] if index is not None
              else embedding.inner_product_neighbours(i, sample, k)[0])
    details["neighbours"], details["neighbour_items"] = served, sample
    out["embedding.n_items"] = int(len(sample))
    if cats is not None:
        is_feature = cfg.item_category in config.features.item_columns(items.columns)
        out.update(_item_quality(vectors, served, sample, cats, cat_names, config, is_feature, notes, details))
    out.update(_user_probes(u, users, dataset, split, config, notes, details))
    models = candidates(vectors, split.train, popularity="popularity" in evaluation.recommended)
    out.update(horizon_metrics(models, dataset.interactions, split, evaluation.users, k=k,
                               days=cfg.horizon_days, n_resamples=cfg.bootstrap, seed=seed, notes=notes))
    if production is None:
        notes.append(production_note or "no production run: embedding stability and recommendation churn skipped")
    else:
        out.update(champion.stability(production, i, evaluation.recommended[keys.MODEL], user_ids=dataset.users.ids,
                                      item_ids=dataset.items.ids, train=split.train, exclude=split.train_seen,
                                      eval_users=evaluation.users, k=k, max_items=cfg.embedding_max_items,
                                      seed=seed, notes=notes))
    return EmbeddingReport(metrics=out, details=details)
