"""The retrain, step by step: the one code path behind the notebook and the scheduled run.

``notebooks/retrain.ipynb`` calls the steps of :class:`Retrain` cell by cell; :func:`run` calls the same
steps in-process. Each step calls the module that owns its concern and keeps its result object; it records its
wall time under its phase name (``ingest``, ``features``, ``fit``, ``index``, ``evaluate``, ``save``) in
:attr:`Retrain.timings` (seconds).

Example
-------
>>> job = Retrain({"model": {"epochs": 10}}, run_dir=None)   # doctest: +SKIP
>>> metrics = job.run_all()                                   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config
from recsys_lab.data import weights
from recsys_lab.data.drift import snapshot_drift
from recsys_lab.data.sources import load_checked
from recsys_lab.data.warehouse import Snapshot
from recsys_lab.errors import RunError
from recsys_lab.evaluation import champion, embedding_report, keys, personas
from recsys_lab.evaluation.champion import RunVectors
from recsys_lab.evaluation.cold_start import NS, evaluate_cold_start
from recsys_lab.evaluation.gate import GateResult, check_gate, for_serving, resolved
from recsys_lab.evaluation.ranking import (candidates, evaluate_models, sample_users, validation_scorer)
from recsys_lab.features import Dataset, identity_features
from recsys_lab.models import lightfm as models
from recsys_lab.models.candidates import Variant, fit_candidates
from recsys_lab.prepare import dataset_and_split, hybrid_features
from recsys_lab.pipeline.results import ProductionRef, Productions, RetrainResults
from recsys_lab.ranking.stage import run_stage
from recsys_lab.retrieval import ann
from recsys_lab.retrieval.recall import measure_recall, split_queries
from recsys_lab.store.artifacts import SavedBlend, save_artifacts
from recsys_lab.store.folder import RunFolder
from recsys_lab.timing import Phases

__all__ = ["Retrain", "run", "BASELINES"]

log = logging.getLogger(__name__)

BASELINES = keys.BASELINES
"""Baselines trained and evaluated on the same split, in report order (:data:`recsys_lab.evaluation.keys.BASELINES`)."""

class Retrain(RetrainResults):
    """One retrain: snapshot -> features -> split -> fit -> index -> evaluation -> run folder. Each step calls the
    module that owns its concern and keeps its result in :class:`RetrainResults` (``metrics`` = ``keys.flatten``).

    Parameters
    ----------
    config : Config or dict or None
        Configuration (a nested dict as papermill injects it is validated by ``Config.from_dict``).
    run_dir : str or Path or None
        Where :meth:`save` writes the run's files; None: nothing is written (interactive exploration).
    show_progress : bool
        tqdm bars over epochs.
    """

    def __init__(self, config: Config | dict | None = None, *, run_dir: str | Path | None = None,
                 show_progress: bool = False) -> None:
        super().__init__()
        self.config = config if isinstance(config, Config) else Config.from_dict(config)
        self.run_dir, self.show_progress = Path(run_dir) if run_dir else None, show_progress
        self._phases, self._productions = Phases(), Productions()  # timings per phase; production loaded once
        self.timings = self._phases.timings

    def _need(self, attr: str, step: str) -> Any:
        value = getattr(self, attr)
        if value is None or value == {}:
            raise RunError(f"call {step}() before this step")
        return value

    # -- steps -------------------------------------------------------------------------------------------
    def ingest(self) -> Snapshot:
        """Load the source, run the guardrails, store a snapshot (:func:`recsys_lab.data.sources.load_checked`).

        Returns
        -------
        Snapshot
            Also :attr:`snapshot` (DataFileError, DownloadError or DataValidationError: nothing stored).
        """
        with self._phases.phase("ingest"):
            self.snapshot, self.validation = load_checked(self.config.data, self.config.validate)
        return self.snapshot

    def build_features(self) -> Dataset:
        """Id maps and features from the snapshot (weights transformed), then the split (:attr:`split`).

        Returns
        -------
        Dataset
            Also :attr:`dataset` (ConfigError: ``eval.k`` above the catalogue; DataError: no user to evaluate).
        """
        snap, cfg = self._need("snapshot", "ingest"), self.config
        with self._phases.phase("features"):
            self.dataset, self.split = dataset_and_split(snap, cfg)
            if self.split.method == "random" and cfg.split.method == "auto":
                self._warn("the log has no timestamps: split.method 'auto' used a per-user random holdout")
        return self.dataset

    def check_drift(self, reference: "Snapshot | ProductionRef") -> dict[str, float]:
        """``drift.*`` of this snapshot against ``reference``'s (:func:`recsys_lab.data.drift.drift`).

        Parameters
        ----------
        reference : Snapshot, Production, path of the production run folder, or None

        Returns
        -------
        dict of str to float
            Empty without a reference or when production's folder or snapshot is unreadable (a warning).
        """
        snap, reference = self._need("snapshot", "ingest"), self._productions.snapshot(reference)
        self.drift = {}
        if reference is not None:
            with self._phases.phase("evaluate", "drift"):
                self.drift = snapshot_drift(snap, reference, self.config.features)
        return self.drift

    def fit(self) -> models.FitResult:
        """Fit the hybrid and every baseline on one split (:func:`recsys_lab.models.candidates.fit_candidates`).

        Returns
        -------
        models.FitResult
            The hybrid's; all fits in :attr:`fits` / :attr:`baseline_fits`, vectors in :attr:`vectors`.
        """
        ds, sp_, cfg = self._need("dataset", "build_features"), self.split, self.config
        with self._phases.phase("fit"):
            variants = {"hybrid": Variant(*hybrid_features(ds, sp_))}
            if "lightfm_cf" in cfg.eval.baselines:
                variants["lightfm_cf"] = Variant(identity_features(ds.users, "user").matrix,
                                                 identity_features(ds.items, "item").matrix)
            if ds.config.windows:
                variants["lightfm_static"] = Variant(ds.user_features.matrix, ds.item_features.matrix)
            score = validation_scorer(sp_.validation, sample_users(sp_.validation_users, cfg.model.validation_users,
                                                                  cfg.model.seed), exclude=sp_.fit_seen, k=cfg.eval.k)
            fitted = fit_candidates(sp_, variants, cfg, score=score, show_progress=self.show_progress)
            self.fits, self.baseline_fits, self.vectors = fitted.fits, fitted.baseline_fits, fitted.vectors
        self._warn(*fitted.warnings)
        return self.fits["hybrid"]

    def build_index(self) -> ann.MipsIndex | None:
        """The candidate-generation index and its ``ann.recall@k`` (:func:`recsys_lab.retrieval.recall.measure_recall`).

        Returns
        -------
        ann.MipsIndex or None
            Also :attr:`index`; None for exact search. Warns (``AnnRecallWarning``) below ``ann.min_recall``.
        """
        self._need("fits", "fit")
        cfg, k, seed = self.config.ann, self.config.eval.k, self.config.model.seed
        u, i = self.vectors["hybrid"]
        queries, calibration = split_queries(u, cfg.recall_users, seed)
        with self._phases.phase("index"):
            r = measure_recall(i, queries, k, method=cfg.resolved_method(len(i)), n_neighbors=cfg.n_neighbors,
                               epsilon=cfg.epsilon, head_size=cfg.head_size or None, seed=seed,
                               n_jobs=self.config.model.num_threads, target_recall=cfg.target_recall,
                               calibration=calibration)
        self.index, self.recall = r.index, {keys.at("ann.recall", k): r.recall} if r.index else {"ann.exact": 1}
        self.timings.update(r.timings)
        r.warn_below(cfg.min_recall, k)
        return self.index

    def evaluate(self) -> dict[str, float]:
        """Every model on the same test users, with intervals (:func:`recsys_lab.evaluation.ranking.evaluate_models`).

        Returns
        -------
        dict of str to float
            :attr:`metrics` after this step.
        """
        self._need("fits", "fit")
        sp_, cfg = self.split, self.config
        with self._phases.phase("evaluate"):
            self.evaluation = evaluate_models(
                candidates(self.vectors, sp_.train, popularity="popularity" in cfg.eval.baselines), sp_.test,
                users=sample_users(sp_.warm_test_users, cfg.eval.max_users, cfg.model.seed), exclude=sp_.train_seen,
                k=cfg.eval.k, n_resamples=cfg.eval.bootstrap, seed=cfg.model.seed, split_stats=sp_.stats,
                best_epoch=self.fits["hybrid"].best_epoch, protocol=sp_.method, max_ci_width=cfg.eval.max_ci_width)
        self._warn(*self.evaluation.warnings)
        return self.metrics

    def rank(self) -> dict[str, float]:
        """The ranking stage: blend and ranker learnt on validation (:func:`recsys_lab.ranking.stage.run_stage`).

        Returns
        -------
        dict of str to float
            The ``blend.*``, ``ranker.*`` and ``rank.*`` keys (the result in :attr:`ranking`).
        """
        self._need("evaluation", "evaluate")
        with self._phases.phase("rank", "ranking stage (blend, ranker)"):
            self.ranking = run_stage(self.split, self.dataset, self.fits, self.baseline_fits, self.vectors,
                                     self.evaluation, self.config)
        self._warn(*self.ranking.notes)
        return self.ranking.metrics

    def evaluate_cold_start(self, ns: tuple[int, ...] = NS, *, last: int = 10) -> dict[str, float]:
        """Onboarding and fold-in (:func:`recsys_lab.evaluation.cold_start.evaluate_cold_start`).

        Parameters
        ----------
        ns : tuple of int
            Onboarding sizes of the cold users (default ``(0, 1, 3, 5, 10)``).
        last : int
            Most recent training positives a warm user is folded in from (default 10).

        Returns
        -------
        dict of str to float
            The ``cold.*`` and ``warm.*`` keys.
        """
        self._need("vectors", "fit")
        cfg = self.config
        with self._phases.phase("evaluate", "cold start"):
            self.cold_start = evaluate_cold_start(
                self.dataset.interactions, self.split, *self.vectors["hybrid"],
                positive_threshold=weights.positive_threshold(cfg.data), warm_users=self.eval_users,
                max_users=cfg.eval.cold_max_users, ns=ns, k=cfg.eval.k, last=last, n_boot=cfg.eval.bootstrap,
                seed=cfg.model.seed)
        return self.cold_start.metrics

    def evaluate_embeddings(self, production: ProductionRef = None) -> dict[str, float]:
        """Beyond accuracy, fairness, embedding quality and stability against ``production``
        (:func:`recsys_lab.evaluation.embedding_report.evaluate_embeddings`).

        Parameters
        ----------
        production : Production, path of the production run folder, or None

        Returns
        -------
        dict of str to float
            The keys added; details in :attr:`embedding_report`.
        """
        self._need("evaluation", "evaluate")
        prod, error = self._productions.get(production)
        tables = {t: self.snapshot.table(t) if self.snapshot is not None else pl.DataFrame() for t in ("items", "users")}
        with self._phases.phase("evaluate", "embeddings, beyond accuracy, fairness"):
            self.embeddings = embedding_report.evaluate_embeddings(
                self.dataset, self.split, self.vectors, self.evaluation, config=self.config, index=self.index,
                production=None if prod is None else RunVectors.of(prod),
                production_note=None if production is None else f"stability skipped: {error}", **tables)
        for message in self.embeddings.notes:
            log.info("evaluate_embeddings: %s", message)
        return self.embeddings.metrics

    def evaluate_personas(self, production: ProductionRef = None, *, file: str | Path | None = None) -> dict[str, dict]:
        """Every persona's top-k in this run and production (:func:`recsys_lab.evaluation.personas.persona_lists`).

        Parameters
        ----------
        production : Production, path of the production run folder, or None
        file : str or Path or None
            Persona file (default: the shipped MovieLens personas).

        Returns
        -------
        dict
            :attr:`personas` (``personas.json``); production's in :attr:`production_personas`.
        """
        self._need("fits", "fit")
        ds, k, people = self.dataset, self.config.eval.k, personas.load_personas(file)
        titles = dict(zip(ds.titles["item_id"].to_list(), ds.titles["title"].to_list()))
        self.personas = personas.persona_lists(people, self.vectors["hybrid"][1], ds.items.ids, titles, k=k)
        prod, error = self._productions.get(production)
        self.production_personas = {} if prod is None else personas.persona_lists(people, prod.item_vecs,
                                                                                  prod.item_ids, titles, k=k)
        if prod is None and production is not None:
            log.warning("personas: no production lists (%s)", error)
        return self.personas

    def check_gate(self, production: ProductionRef = None) -> GateResult:
        """``config.gate`` with production re-scored on this split (:func:`recsys_lab.evaluation.champion.compare`).

        Parameters
        ----------
        production : Production, path of the production run folder, or None (unreadable: the gate fails closed)

        Returns
        -------
        GateResult
            Also :attr:`gate` (``gate.json``).
        """
        self._need("evaluation", "evaluate")
        cfg, sp_, ds = self.config, self.split, self.dataset
        prod, error = self._productions.get(production)
        self.champion = None if prod is None else champion.compare(
            RunVectors.of(prod), self.evaluation.per_user[keys.MODEL],
            list(resolved(cfg.gate, cfg.eval.k).max_regression), user_ids=ds.users.ids, item_ids=ds.items.ids,
            train=sp_.train, test=sp_.test, exclude=sp_.train_seen, eval_users=self.eval_users, k=cfg.eval.k,
            n_resamples=cfg.eval.bootstrap, seed=cfg.model.seed)
        serves = "blend" if self.ranking is not None and self.ranking.served is not None else "model"
        self.gate = check_gate(self.metrics, for_serving(cfg.gate, serves), k=cfg.eval.k,
                               production_error=error or None,
                               production=None if self.champion is None else self.champion.comparison)
        return self.gate

    def save(self) -> Path | None:
        """Write the artifacts (:func:`recsys_lab.store.artifacts.save_artifacts`) and JSON files, each atomically.

        Returns
        -------
        Path or None
            ``run_dir``; None (nothing written) when it is None.
        """
        if self.run_dir is None:
            log.info("no run_dir: nothing saved")
            return None
        self._need("fits", "fit")
        folder, ds, sp_ = RunFolder(self.run_dir), self.dataset, self.split
        with self._phases.phase("save"):
            u, i = self.vectors["hybrid"]
            served = None if self.ranking is None else self.ranking.served
            save_artifacts(folder, users=ds.users, items=ds.items, user_vecs=u, item_vecs=i, seen=sp_.train_seen,
                           positives=sp_.train, user_tokens=ds.user_features.tokens,
                           item_tokens=ds.item_features.tokens, model=self.fits["hybrid"].model, index=self.index,
                           per_user=self.per_user_table(),
                           blend=None if served is None else SavedBlend(*served, self.ranking.weights))
            for name, value in {"params": self.config.to_dict(), **self.documents()}.items():
                atomic_write_json(getattr(folder, name), value)
        atomic_write_json(folder.timings, self.timings)
        return self.run_dir

    def run_all(self, production: ProductionRef = None) -> dict[str, float]:
        """Every step in order, drift and gate against ``production``; raises whatever a step raises.

        Parameters
        ----------
        production : Production, str, Path or None

        Returns
        -------
        dict of str to float
            :attr:`metrics` after every step.
        """
        for step in (self.ingest, self.build_features, self.fit, self.build_index, self.evaluate,
                     *((self.rank,) if self.config.rank.enabled else ()), self.evaluate_cold_start):
            step()
        for step in (self.evaluate_embeddings, self.evaluate_personas, self.check_drift, self.check_gate):
            step(production)
        self.save()
        return self.metrics


def run(config: Config | dict | None = None, *, run_dir: str | Path | None = None,
        production: ProductionRef = None) -> Retrain:
    """Run every step of a retrain in this process (same code as the notebook); returns the finished job.

    Parameters
    ----------
    config : Config, dict or None
        The configuration (None: defaults).
    run_dir : str or Path, optional
        Run folder the results are saved into; None saves nothing.
    production : Production, str, Path or None
        Production's run folder (drift reference and champion of the gate); None: no production run.

    Returns
    -------
    Retrain
        The finished job (metrics, fits, vectors, index, gate).
    """
    job = Retrain(config, run_dir=run_dir)
    job.run_all(production)
    return job
