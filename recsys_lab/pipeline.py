"""The retrain, step by step: the one code path behind the notebook and the scheduled run.

``notebooks/retrain.ipynb`` calls the steps of :class:`Retrain` cell by cell; :func:`run` calls the same
steps in-process. Each step records its wall time under its phase name (``ingest``, ``features``, ``fit``,
``index``, ``evaluate``, ``save``) in :attr:`Retrain.timings` (seconds).

Example
-------
>>> job = Retrain({"model": {"epochs": 10}}, run_dir=None)   # doctest: +SKIP
>>> metrics = job.run_all()                                   # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_lab._fs import atomic_write_bytes, atomic_write_json
from recsys_lab.config import Config
from recsys_lab.data.guardrails import ValidationReport, clean, drift, validate
from recsys_lab.data.sources import load
from recsys_lab.data.warehouse import Snapshot, ingest, open_snapshot
from recsys_lab.errors import ConfigError, DataError, RunError
from recsys_lab.evaluation import champion, embedding_report, keys, personas
from recsys_lab.evaluation.champion import ChampionResult, RunVectors
from recsys_lab.evaluation.cold_start import NS, ColdStartResult, OnboardingResult, RecoveryResult, evaluate_cold_start
from recsys_lab.evaluation.embedding_report import EmbeddingReport
from recsys_lab.evaluation.gate import NO_PRODUCTION, GateResult, check_gate, resolved
from recsys_lab.evaluation.ranking import (EvaluationResult, candidates, evaluate_models, sample_users,
                                           validation_scorer)
from recsys_lab.features import Dataset, build_dataset, identity_features
from recsys_lab.models import baselines
from recsys_lab.models import lightfm as models
from recsys_lab.retrieval import ann
from recsys_lab.split import Split, make_split
from recsys_lab.store.folder import RunFolder, read_json

__all__ = ["Retrain", "run", "BASELINES", "Production"]

log = logging.getLogger(__name__)
progress = logging.getLogger("recsys_lab.progress")
"""Phase by phase and epoch by epoch progress (INFO); ``recsys-lab retrain`` prints it as the run goes."""

BASELINES = keys.BASELINES
"""Baselines trained and evaluated on the same split, in report order (:data:`recsys_lab.evaluation.keys.BASELINES`)."""


class Production:
    """Production's evidence as the gate and drift need it: a run folder's metrics, id maps and vectors.

    Parameters
    ----------
    run_dir : str or Path
        The production run folder.

    Attributes
    ----------
    run_id : str
    metrics : dict
    user_ids, item_ids : ndarray
        External ids in production's index order.
    user_vecs, item_vecs : ndarray, float32
        Folded vectors (see :func:`recsys_lab.models.lightfm.embeddings`).

    Raises
    ------
    RunError
        A file is missing or unreadable; the message names it (the gate then fails closed).
    """

    def __init__(self, run_dir: str | Path) -> None:
        folder = RunFolder(run_dir)
        self.run_dir, self.run_id = folder.path, folder.run_id
        where = f"production run {self.run_id}"
        try:  # the gate fails closed when any of these is missing or unreadable
            self.metrics = read_json(folder.metrics, "metrics file")
            if not isinstance(self.metrics, dict):
                raise RunError(f"{folder.metrics}: not a JSON object")
            arrays = {}
            for path, keys in ((folder.id_maps, ("user_ids", "item_ids")),
                               (folder.embeddings, ("user_vecs", "item_vecs"))):
                try:
                    with np.load(path) as npz:
                        arrays.update({k: npz[k] for k in keys})
                except (OSError, ValueError, EOFError, KeyError) as exc:
                    raise RunError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
        except RunError as exc:
            raise RunError(f"{where}: {exc}") from exc
        self.user_ids, self.item_ids = arrays["user_ids"], arrays["item_ids"]
        self.user_vecs, self.item_vecs = arrays["user_vecs"], arrays["item_vecs"]
        try:  # optional: only drift needs it
            self.manifest = read_json(folder.run_json, "run manifest")
        except RunError:
            self.manifest = {}

    def snapshot(self) -> Snapshot | None:
        """The warehouse snapshot production was trained on (drift reference), or None when it is gone.

        Returns
        -------
        Snapshot or None
            None also when the manifest names no snapshot or warehouse (a warning is logged when it is gone).
        """
        snap = (self.manifest.get("data") or {}).get("snapshot")
        warehouse = ((self.manifest.get("config") or {}).get("data") or {}).get("warehouse")
        if not snap or not warehouse:
            return None
        try:
            return open_snapshot(snap, warehouse)
        except (DataError, OSError):
            log.warning("production's snapshot %s is gone from %s: no drift reference", snap, warehouse)
            return None


class Retrain:
    """One retrain: snapshot -> features -> split -> fit -> index -> evaluation -> run folder.

    Each step calls the module that owns its concern and keeps its result object (:attr:`evaluation`,
    :attr:`cold_start`, :attr:`embeddings`, :attr:`drift`, :attr:`champion`, :attr:`gate`); :attr:`metrics` is
    ``keys.flatten`` of them (:func:`recsys_lab.evaluation.keys.flatten`).

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
        self.config = config if isinstance(config, Config) else Config.from_dict(config)
        self.run_dir, self.show_progress = Path(run_dir) if run_dir else None, show_progress
        self.timings: dict[str, float] = {}
        self.snapshot: Snapshot | None = None
        self.validation: ValidationReport | None = None
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.fits: dict[str, models.FitResult] = {}
        self.baseline_fits: dict[str, baselines.BaselineFit] = {}
        self.vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.index: ann.MipsIndex | None = None
        self.recall: dict[str, float] = {}
        self.evaluation: EvaluationResult | None = None
        self.cold_start: ColdStartResult | None = None
        self.embeddings: EmbeddingReport | None = None
        self.drift: dict[str, float] = {}
        self.champion: ChampionResult | None = None
        self.gate: GateResult | None = None
        self.personas: dict[str, dict] = {}
        self.production_personas: dict[str, dict] = {}
        self.warnings: list[str] = []
        self._production_cache: dict[Path, Production] = {}

    @property
    def metrics(self) -> dict[str, float]:
        """``metrics.json`` so far: the steps' figures in step order (index, evaluation, cold start, ...)."""
        return keys.flatten([self.recall, self.evaluation, self.cold_start, self.embeddings, self.drift,
                             self.champion])

    @property
    def eval_users(self) -> np.ndarray | None:
        """The evaluated users (internal indices), None before :meth:`evaluate`."""
        return None if self.evaluation is None else self.evaluation.users

    @property
    def per_user(self) -> dict[str, dict[str, np.ndarray]]:
        """Per-user metrics of the model, each baseline and, after :meth:`check_gate`, production."""
        out = {} if self.evaluation is None else dict(self.evaluation.per_user)
        return out if self.champion is None else {**out, "production": self.champion.per_user}

    @property
    def onboarding(self) -> OnboardingResult | None:
        """Cold users per onboarding size (``cold_start.onboarding``)."""
        return None if self.cold_start is None else self.cold_start.onboarding

    @property
    def recovery(self) -> RecoveryResult | None:
        """Warm users, fold-in against the retrain (``cold_start.recovery``)."""
        return None if self.cold_start is None else self.cold_start.recovery

    @property
    def embedding_report(self) -> dict[str, Any]:
        """Details of :meth:`evaluate_embeddings` for the report (``embeddings.details``: notes, neighbours, ...)."""
        return {} if self.embeddings is None else self.embeddings.details

    @property
    def history(self) -> dict[str, list[dict]]:
        """Per-epoch history of each fitted model: ``{name: [{"epoch", "seconds", "validation"}, ...]}``."""
        return {name: res.history for name, res in self.fits.items()}

    @property
    def data_info(self) -> dict:
        """The data this run saw: snapshot id, content hash, source, guardrail counts, split statistics."""
        snap = self.snapshot
        out = {"snapshot": snap.id, "hash": snap.hash, "source": snap.info()["source"]} if snap else {}
        if self.validation is not None:
            out["validation"] = self.validation.to_dict()
        if self.split is not None:
            out["split"] = self.split.stats
        return {**out, "warnings": list(self.warnings)}

    @contextmanager
    def _phase(self, name: str, label: str | None = None):
        t0, label = time.perf_counter(), label or name
        progress.info("%s ...", label)
        try:
            yield
        finally:
            seconds, peak = time.perf_counter() - t0, _peak_rss_mib()
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            self.timings[f"peak_rss_mib.{label}"] = peak  # the process's peak so far: MiB, not seconds
            progress.info("%s done in %.1f s (peak RSS %.0f MiB)", label, seconds, peak)

    def _production(self, production: "Production | str | Path | None") -> tuple["Production | None", str]:
        """``production`` loaded once per retrain: ``(run, "")``, or ``(None, why)`` when None (:data:`NO_PRODUCTION`)
        or unreadable (the RunError's message; not cached, each step reports it)."""
        if production is None or isinstance(production, Production):
            return production, NO_PRODUCTION if production is None else ""
        key = Path(production).resolve()
        try:
            if key not in self._production_cache:
                self._production_cache[key] = Production(key)
        except RunError as exc:
            return None, str(exc)
        return self._production_cache[key], ""

    def _need(self, attr: str, step: str) -> Any:
        value = getattr(self, attr)
        if value is None or value == {}:
            raise RunError(f"call {step}() before this step")
        return value

    def _warn(self, message: str) -> None:
        """An evaluation warning: logged and kept in :attr:`warnings` (``data.json``, CLI summary, report)."""
        self.warnings.append(message)
        log.warning("%s", message)

    # -- steps -------------------------------------------------------------------------------------------
    def ingest(self) -> Snapshot:
        """Load the source, run the data guardrails, store an immutable warehouse snapshot (no-op if unchanged).

        Returns
        -------
        Snapshot
            Also :attr:`snapshot`. Raises DataFileError, DownloadError or DataValidationError (nothing stored).
        """
        with self._phase("ingest"):
            cfg = self.config.data
            tables, weight_range = load(cfg)
            self.validation = validate(tables.interactions, tables.users, tables.items, self.config.validate,
                                       weight_range=weight_range, positive_threshold=cfg.threshold,
                                       weight_transform=cfg.weight_transform, source=tables.source,
                                       has_time=tables.has_time)
            self.snapshot = ingest({"interactions": clean(tables.interactions, has_time=tables.has_time),
                                    "users": tables.users,
                                    "items": tables.items}, cfg.warehouse, source=tables.source)
        return self.snapshot

    def build_features(self) -> Dataset:
        """Id maps and feature matrices from the snapshot (weight transform applied), then the split.

        Returns
        -------
        Dataset
            Also :attr:`dataset`; the split is :attr:`split`. Raises ConfigError (``eval.k`` above the catalogue,
            a split the data cannot support) or DataError (no user to evaluate).
        """
        snap = self._need("snapshot", "ingest")
        with self._phase("features"):
            with snap.connect() as con:
                inter, users, items = (con.sql(f"SELECT * FROM {t}").pl() for t in ("interactions", "users", "items"))
            if self.config.data.weight_transform == "log1p":
                inter = inter.with_columns(pl.col("weight").log1p())
            self.dataset = build_dataset(inter, users, items, self.config.features)
            if self.config.eval.k > len(self.dataset.items):
                raise ConfigError(f"must be at most the catalogue size ({len(self.dataset.items)} items), got "
                                  f"{self.config.eval.k}", parameter="eval.k")
            self.split = make_split(self.dataset.interactions, self.dataset.shape, self.config.split,
                                    positive_threshold=self.config.data.threshold, seed=self.config.split.seed,
                                    windows=bool(self.config.features.windows))
            if self.split.stats["warm_test_users"] == 0:
                raise DataError(f"no user has both training and test positives under split.method = "
                                f"{self.split.method!r}: nothing to evaluate (more data, a lower "
                                "data.positive_threshold or another split.method)")
            if self.split.method == "random" and self.config.split.method == "auto":
                self._warn("the log has no timestamps: split.method 'auto' used a per-user random holdout")
        return self.dataset

    def check_drift(self, reference: "Snapshot | Production | str | Path | None") -> dict[str, float]:
        """Drift of this snapshot against ``reference`` (production's) as ``drift.*`` metrics
        (:func:`recsys_lab.data.guardrails.drift`).

        Parameters
        ----------
        reference : Snapshot, Production, path of the production run folder, or None

        Returns
        -------
        dict of str to float
            Empty without a reference or when production's folder or snapshot is unreadable (a warning).
        """
        snap = self._need("snapshot", "ingest")
        if isinstance(reference, (str, Path)):
            reference, error = self._production(reference)
            if error:
                log.warning("no drift reference: %s", error)
        if isinstance(reference, Production):
            reference = reference.snapshot()
        self.drift = {}
        if reference is None:
            return self.drift
        with self._phase("evaluate", "drift"):
            tables, ref = ({t: s.table(t) for t in ("interactions", "users", "items")} for s in (snap, reference))
            columns = self.config.features.item_columns(tables["items"].columns)
            self.drift = drift(ref, tables, user_columns=self.config.features.user, item_columns=columns)
        return self.drift

    def fit(self) -> models.FitResult:
        """Fit the hybrid and the baselines on the same split: LightFM models (hybrid, ``lightfm_cf``, with windowed
        features ``lightfm_static``) early-stop on validation NDCG@k then refit; EASE and ALS tune on validation.

        Returns
        -------
        models.FitResult
            The hybrid's fit; all fits in :attr:`fits` / :attr:`baseline_fits`, vectors in :attr:`vectors`.
        """
        ds, sp_ = self._need("dataset", "build_features"), self.split
        cfg = self.config
        wanted = set(cfg.eval.baselines)
        with self._phase("fit"):
            variants = {"hybrid": (ds.user_features_at(sp_.cutoff).matrix if sp_.cutoff else ds.user_features.matrix,
                                   ds.item_features.matrix,
                                   ds.user_features_at(sp_.validation_cutoff).matrix if sp_.validation_cutoff
                                   else None)}
            if "lightfm_cf" in wanted:
                variants["lightfm_cf"] = (identity_features(ds.users, "user").matrix,
                                          identity_features(ds.items, "item").matrix, None)
            if ds.config.windows:
                variants["lightfm_static"] = (ds.user_features.matrix, ds.item_features.matrix, None)
            use_val = cfg.model.patience > 0 and cfg.split.validation_fraction > 0
            weighted = cfg.model.sample_weight == "weight"
            score = validation_scorer(sp_.validation, sample_users(sp_.validation_users, cfg.model.validation_users,
                                                                  cfg.model.seed), exclude=sp_.fit_seen, k=cfg.eval.k)
            for name, (uf, itf, fit_uf) in variants.items():
                progress.info(" LightFM %s", "model (hybrid)" if name == "hybrid" else name)
                fit_uf = uf if fit_uf is None else fit_uf
                validate = (lambda m, uf=fit_uf, itf=itf: score(*models.embeddings(m, uf, itf))) if score else None
                res = models.fit(sp_.train, uf, itf, cfg.model, fit_matrix=sp_.fit, fit_user_features=fit_uf,
                                 validate=validate if use_val else None,
                                 sample_weight=sp_.train_weights if weighted else None,
                                 fit_sample_weight=sp_.fit_weights if weighted else None,
                                 show_progress=self.show_progress)
                self.fits[name], self.vectors[name] = res, models.embeddings(res.model, uf, itf)
                log.info("%s: %d epochs in %.2f s", name, res.best_epoch, res.fit_seconds)
            validate = score if cfg.split.validation_fraction > 0 else None
            if "ease" in wanted and len(ds.items) > cfg.eval.ease_max_items:
                self._warn(f"baseline ease skipped: {len(ds.items)} items > eval.ease_max_items "
                           f"{cfg.eval.ease_max_items}")
            elif "ease" in wanted:
                progress.info(" EASE (lambda chosen on validation)")
                self.baseline_fits["ease"] = baselines.fit_ease(sp_.fit, sp_.train, validate)
            if "als" in wanted:
                progress.info(" implicit ALS (%s)", "grid on validation" if len(cfg.eval.als_grid) > 1 else "one setting")
                self.baseline_fits["als"] = baselines.fit_als(sp_.fit_weights, sp_.train_weights, validate,
                                                              grid=cfg.eval.als_grid, seed=cfg.model.seed,
                                                              num_threads=cfg.model.num_threads)
            self.vectors.update({name: (b.user_vecs, b.item_vecs) for name, b in self.baseline_fits.items()})
        return self.fits["hybrid"]

    def build_index(self) -> ann.MipsIndex | None:
        """Candidate generation per ``config.ann`` and its ``ann.recall@k`` against exact top-k on a seeded sample
        of ``ann.recall_users`` users (:func:`recsys_lab.retrieval.ann.measure_recall`; ``index.*`` timings); warns
        (``AnnRecallWarning``) below ``ann.min_recall``.

        Returns
        -------
        ann.MipsIndex or None
            The index (also :attr:`index`), None for exact search.
        """
        self._need("fits", "fit")
        cfg, k, seed = self.config.ann, self.config.eval.k, self.config.model.seed
        u, i = self.vectors["hybrid"]
        sample = np.sort(np.random.default_rng(seed).choice(len(u), min(cfg.recall_users, len(u)), replace=False))
        with self._phase("index"):
            r = ann.measure_recall(i, u[sample], k, method=cfg.resolved_method(len(i)), n_neighbors=cfg.n_neighbors,
                                   epsilon=cfg.epsilon, head_size=cfg.head_size or None, seed=seed,
                                   n_jobs=self.config.model.num_threads)
        log.info("candidate generation: %s over %d items, recall@%d %.4f on %d users", r.method, len(i), k, r.recall,
                 r.n_queries)
        self.index, self.recall = r.index, {keys.at("ann.recall", k): r.recall}
        self.timings.update(r.timings)
        if r.recall < cfg.min_recall:
            warnings.warn(f"ann.recall@{k} {r.recall:.4f} is below ann.min_recall {cfg.min_recall} ({r.method} over "
                          f"{len(i)} items, {r.n_queries} users): raise ann.epsilon or ann.head_size, or use "
                          f"ann.method = 'exact'", ann.AnnRecallWarning, stacklevel=2)
        return self.index

    def evaluate(self) -> dict[str, float]:
        """The model and every baseline on the same warm test users (at most ``eval.max_users``), with intervals
        and paired differences (:func:`recsys_lab.evaluation.ranking.evaluate_models`).

        Returns
        -------
        dict of str to float
            :attr:`metrics` after this step.
        """
        self._need("fits", "fit")
        sp_, cfg = self.split, self.config
        with self._phase("evaluate"):
            self.evaluation = evaluate_models(
                candidates(self.vectors, sp_.train, popularity="popularity" in cfg.eval.baselines), sp_.test, users=sample_users(sp_.warm_test_users, cfg.eval.max_users, cfg.model.seed),
                exclude=sp_.train_seen, k=cfg.eval.k, n_resamples=cfg.eval.bootstrap, seed=cfg.model.seed,
                split_stats=sp_.stats, best_epoch=self.fits["hybrid"].best_epoch, protocol=sp_.method,
                max_ci_width=cfg.eval.max_ci_width)
            for message in self.evaluation.warnings:
                self._warn(message)
        return self.metrics

    def evaluate_cold_start(self, ns: tuple[int, ...] = NS, *, last: int = 10) -> dict[str, float]:
        """Cold users onboarded with their first ``n`` positives and warm users' fold-in against the retrain
        (:func:`recsys_lab.evaluation.cold_start.evaluate_cold_start`; at most ``eval.cold_max_users`` of each).

        Parameters
        ----------
        ns : tuple of int
            Onboarding positives given to each cold user (default ``(0, 1, 3, 5, 10)``).
        last : int
            Warm users are folded in from their ``last`` most recent training positives (default 10).

        Returns
        -------
        dict of str to float
            The ``cold.*`` and ``warm.*`` keys.
        """
        self._need("vectors", "fit")
        cfg = self.config
        with self._phase("evaluate", "cold start"):
            self.cold_start = evaluate_cold_start(
                self.dataset.interactions, self.split, *self.vectors["hybrid"], positive_threshold=cfg.data.threshold,
                warm_users=self.eval_users, max_users=cfg.eval.cold_max_users, ns=ns, k=cfg.eval.k, last=last,
                n_boot=cfg.eval.bootstrap, seed=cfg.model.seed)
        return self.cold_start.metrics

    def evaluate_embeddings(self, production: "Production | str | Path | None" = None) -> dict[str, float]:
        """Beyond accuracy, fairness and embedding quality, with stability against ``production``
        (:func:`recsys_lab.evaluation.embedding_report.evaluate_embeddings` lists the keys).

        Parameters
        ----------
        production : Production, path of the production run folder, or None
            For stability and churn (skipped with a note when None or unreadable).

        Returns
        -------
        dict of str to float
            The keys added; details for the report in :attr:`embedding_report`.
        """
        self._need("evaluation", "evaluate")
        prod, error = self._production(production)
        note = None if production is None else f"stability skipped: {error}"
        tables = {t: self.snapshot.table(t) if self.snapshot is not None else pl.DataFrame() for t in ("items", "users")}
        with self._phase("evaluate", "embeddings, beyond accuracy, fairness"):
            self.embeddings = embedding_report.evaluate_embeddings(
                self.dataset, self.split, self.vectors, self.evaluation, config=self.config, index=self.index,
                production=None if prod is None else RunVectors.of(prod), production_note=note, **tables)
        for message in self.embeddings.notes:
            log.info("evaluate_embeddings: %s", message)
        return self.embeddings.metrics

    def evaluate_personas(self, production: "Production | str | Path | None" = None, *,
                          file: str | Path | None = None) -> dict[str, dict]:
        """Every persona's top-k by fold-in into this run's item space, and production's when given
        (:func:`recsys_lab.evaluation.personas.persona_lists`; saved as ``personas.json``).

        Parameters
        ----------
        production : Production, path of the production run folder, or None
        file : str or Path or None
            Persona file (default: the shipped MovieLens personas).

        Returns
        -------
        dict
            This run's lists, as :attr:`personas`; production's in :attr:`production_personas`.
        """
        self._need("fits", "fit")
        ds, k = self.dataset, self.config.eval.k
        people = personas.load_personas(file)
        titles = dict(zip(ds.titles["item_id"].to_list(), ds.titles["title"].to_list()))
        self.personas = personas.persona_lists(people, self.vectors["hybrid"][1], ds.items.ids, titles, k=k)
        prod, error = self._production(production)
        self.production_personas = {} if prod is None else personas.persona_lists(people, prod.item_vecs,
                                                                                  prod.item_ids, titles, k=k)
        if prod is None and production is not None:
            log.warning("personas: no production lists (%s)", error)
        return self.personas

    def per_user_table(self) -> pl.DataFrame:
        """Per-user metrics of every model, one row per (model, evaluated user): ``model, user_id, <metric>...``.

        Returns
        -------
        pl.DataFrame
            ``user_id`` is the external id. Raises RunError before :meth:`evaluate`.
        """
        per_user = self._need("per_user", "evaluate")
        ids = self.dataset.users.ids[self.eval_users]
        return pl.concat([pl.DataFrame({"model": [name] * len(ids), "user_id": ids, **values})
                          for name, values in per_user.items()])

    def check_gate(self, production: "Production | str | Path | None" = None) -> GateResult:
        """``config.gate``: floors, ceilings, baselines, and production re-scored on this run's split, paired per
        user (:func:`recsys_lab.evaluation.champion.compare`); unreadable production fails closed.

        Parameters
        ----------
        production : Production, path of the production run folder, or None
            None: no production run (regression checks skipped, saying so).

        Returns
        -------
        GateResult
            Also :attr:`gate`, saved as ``gate.json``.
        """
        self._need("metrics", "evaluate")
        cfg, sp_, ds = self.config, self.split, self.dataset
        prod, error = self._production(production)
        self.champion = None if prod is None else champion.compare(
            RunVectors.of(prod), self.evaluation.per_user[keys.MODEL],
            list(resolved(cfg.gate, cfg.eval.k).max_regression), user_ids=ds.users.ids, item_ids=ds.items.ids,
            train=sp_.train, test=sp_.test, exclude=sp_.train_seen, eval_users=self.eval_users, k=cfg.eval.k,
            n_resamples=cfg.eval.bootstrap, seed=cfg.model.seed)
        self.gate = check_gate(self.metrics, cfg.gate, k=cfg.eval.k, production_error=error or None,
                               production=None if self.champion is None else self.champion.comparison)
        return self.gate

    def save(self) -> Path | None:
        """Write metrics, params, history, timings and artifacts into ``run_dir`` (atomically, file by file).

        Returns the run folder, or None when ``run_dir`` is None.

        Returns
        -------
        Path or None
            ``run_dir``.

        Raises
        ------
        RunError
            :meth:`fit` was not called.
        """
        if self.run_dir is None:
            log.info("no run_dir: nothing saved")
            return None
        self._need("fits", "fit")
        with self._phase("save"):
            folder = RunFolder(self.run_dir)
            folder.artifacts.mkdir(parents=True, exist_ok=True)
            ds = self.dataset
            _save_npz(folder.id_maps, user_ids=ds.users.ids, item_ids=ds.items.ids)
            u, i = self.vectors["hybrid"]
            _save_npz(folder.embeddings, user_vecs=u, item_vecs=i)
            sp_ = self.split
            _save_npz(folder.split, seen_indptr=sp_.train_seen.indptr, seen_indices=sp_.train_seen.indices,
                      pos_indptr=sp_.train.indptr, pos_indices=sp_.train.indices)
            _save_npz(folder.features, user_tokens=np.array(ds.user_features.tokens),
                      item_tokens=np.array(ds.item_features.tokens))
            models.save_model(self.fits["hybrid"].model, folder.model)
            if self.index is not None:
                self.index.save(folder.index)
            atomic_write_json(folder.params, self.config.to_dict())
            atomic_write_json(folder.history, self.history)
            atomic_write_json(folder.metrics, self.metrics)
            atomic_write_json(folder.data, self.data_info)
            if self.per_user:
                _save_parquet(folder.per_user_metrics, self.per_user_table())
            if self.gate is not None:
                atomic_write_json(folder.gate, self.gate.to_dict())
            if self.personas:
                atomic_write_json(folder.personas, self.personas)
        atomic_write_json(folder.timings, self.timings)
        return self.run_dir

    def run_all(self, production: "Production | str | Path | None" = None) -> dict[str, float]:
        """Every step in order, drift and gate against ``production``; raises whatever a step raises.

        Parameters
        ----------
        production : Production, str, Path or None
            Production's run folder (or its loaded evidence); None: no production run.

        Returns
        -------
        dict of str to float
            :attr:`metrics` after every step.
        """
        self.ingest()
        self.build_features()
        self.fit()
        self.build_index()
        self.evaluate()
        self.evaluate_cold_start()
        self.evaluate_embeddings(production)
        self.evaluate_personas(production)
        self.check_drift(production)
        self.check_gate(production)
        self.save()
        return self.metrics


def _peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (``getrusage``: KiB on Linux, bytes on macOS)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _save_parquet(path: Path, df: pl.DataFrame) -> None:
    buf = io.BytesIO()
    df.write_parquet(buf)
    atomic_write_bytes(path, buf.getvalue())


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run(config: Config | dict | None = None, *, run_dir: str | Path | None = None,
        production: "Production | str | Path | None" = None) -> Retrain:
    """Run every step of a retrain in this process (same code as the notebook); returns the finished job.

    ``production`` (its run folder) is what the gate and the drift compare against.

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

    Raises
    ------
    RecsysLabError
        Whatever a step raises (see :meth:`Retrain.run_all`).
    """
    job = Retrain(config, run_dir=run_dir)
    job.run_all(production)
    return job
