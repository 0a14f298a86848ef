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
import sys
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_lab.retrieval import ann
from recsys_lab.models import baselines
from recsys_lab.evaluation import beyond
from recsys_lab.evaluation import embedding_quality as embedding
from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.models import foldin
from recsys_lab.models import lightfm as models
from recsys_lab.evaluation import personas
from recsys_lab._fs import atomic_write_bytes, atomic_write_json
from recsys_lab.config import Config
from recsys_lab.data.sources import load
from recsys_lab.errors import ConfigError, DataError, RunError
from recsys_lab.features import Dataset, build_dataset, identity_features
from recsys_lab.evaluation.gate import NO_PRODUCTION, GateResult, check_gate
from recsys_lab.evaluation.intervals import bootstrap_ci, paired_difference
from recsys_lab.store.folder import RunFolder, read_json
from recsys_lab.split import Split, make_split
from recsys_lab.data.guardrails import ValidationReport, clean, drift, validate
from recsys_lab.data.warehouse import Snapshot, ingest, open_snapshot

__all__ = ["Retrain", "run", "BASELINES", "Production"]

log = logging.getLogger(__name__)
progress = logging.getLogger("recsys_lab.progress")

_PROBE_MAX_ITEMS = 5_000
"""Item probes (one logistic regression per category and fold) use a seeded sample of at most this many of the
``eval.embedding_max_items`` query items: 50 categories x 3 folds on 20,000 items cost ~1 min, on 5,000 ~7 s."""
"""Phase by phase and epoch by epoch progress (INFO); ``recsys-lab retrain`` prints it as the run goes."""

BASELINES = ("popularity", "lightfm_cf", "lightfm_static", "ease", "als")
"""Baselines trained and evaluated on the same split: most-popular, pure-CF LightFM (identity features), the
hybrid without time-windowed features (only when windows are configured), EASE and implicit ALS."""

HEADLINE = ("ndcg", "precision", "recall", "map")
"""@k metrics reported with intervals (plus ``mrr`` and ``auc``)."""


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
    """One retrain: data snapshot -> features -> split -> fit -> ANN index -> evaluation -> run folder.

    Parameters
    ----------
    config : Config or dict or None
        Configuration (a nested dict as papermill injects it is validated by ``Config.from_dict``).
    run_dir : str or Path or None
        Where :meth:`save` writes ``metrics.json``, ``params.json``, ``history.json``, ``timings.json`` and
        ``artifacts/``. None: nothing is written (interactive exploration).
    show_progress : bool
        tqdm bars over epochs.

    Raises
    ------
    ConfigError
        Invalid configuration.
    """

    def __init__(self, config: Config | dict | None = None, *, run_dir: str | Path | None = None,
                 show_progress: bool = False) -> None:
        self.config = config if isinstance(config, Config) else Config.from_dict(config)
        self.run_dir = Path(run_dir) if run_dir else None
        self.show_progress = show_progress
        self.timings: dict[str, float] = {}
        self.snapshot: Snapshot | None = None
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.fits: dict[str, models.FitResult] = {}
        self.vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.index: ann.MipsIndex | None = None
        self.metrics: dict[str, float] = {}
        self.gate: GateResult | None = None
        self.validation: ValidationReport | None = None
        self.drift: dict[str, float] = {}
        self.baseline_fits: dict[str, baselines.BaselineFit] = {}
        self.eval_users: np.ndarray | None = None
        self.per_user: dict[str, dict[str, np.ndarray]] = {}
        self.warnings: list[str] = []
        self.production_comparison: dict[str, dict] | None = None
        self._production_cache: dict[Path, Production] = {}
        self.onboarding: foldin.OnboardingResult | None = None
        self.recovery: foldin.RecoveryResult | None = None
        self.recommended: dict[str, np.ndarray] = {}
        self.embedding_report: dict[str, Any] = {}
        self.personas: dict[str, dict] = {}
        self.production_personas: dict[str, dict] = {}

    @contextmanager
    def _phase(self, name: str, label: str | None = None):
        t0 = time.perf_counter()
        label = label or name
        progress.info("%s ...", label)
        try:
            yield
        finally:
            seconds = time.perf_counter() - t0
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            peak = _peak_rss_mib()
            self.timings[f"peak_rss_mib.{label}"] = peak  # the process's peak so far: MiB, not seconds
            progress.info("%s done in %.1f s (peak RSS %.0f MiB)", label, seconds, peak)

    def _production(self, production: "Production | str | Path") -> "Production":
        """``production`` loaded once per retrain (drift, gate, stability and personas all read it).

        Raises
        ------
        RunError
            Its metrics or artifacts cannot be read (not cached: each step reports it).
        """
        if isinstance(production, Production):
            return production
        key = Path(production).resolve()
        cached = self._production_cache.get(key)
        if cached is None:
            cached = self._production_cache[key] = Production(key)
        return cached

    def _need(self, attr: str, step: str) -> Any:
        value = getattr(self, attr)
        if value is None or value == {}:
            raise RunError(f"call {step}() before this step")
        return value

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
        out["warnings"] = list(self.warnings)
        return out

    # -- steps -------------------------------------------------------------------------------------------
    def ingest(self) -> Snapshot:
        """Load the configured source, run the data guardrails, and store an immutable warehouse snapshot
        (a no-op when the data is unchanged).

        Returns
        -------
        Snapshot
            The stored snapshot (also kept as :attr:`snapshot`).

        Raises
        ------
        DataFileError, DownloadError
            See :mod:`recsys_lab.data.sources`.
        DataValidationError
            A fail-level guardrail found problems (every failed check is listed); nothing is stored.
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
        """Id maps and feature matrices from the snapshot (weight transform applied), then the split
        (``split.method``; see :mod:`recsys_lab.split`).

        Returns
        -------
        Dataset
            Also kept as :attr:`dataset`; the split is kept as :attr:`split`.

        Raises
        ------
        ConfigError
            ``eval.k`` larger than the catalogue, or a split method the data cannot support.
        DataError
            No training positive or no user to evaluate.
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
        """Drift of this run's snapshot against ``reference`` (production's), added to the metrics as
        ``drift.*`` (see :func:`recsys_lab.data.guardrails.drift`). Without a reference: empty, nothing added.

        Parameters
        ----------
        reference : Snapshot, Production, path of the production run folder, or None

        Returns
        -------
        dict of str to float
            The ``drift.*`` figures (also kept as :attr:`drift`); empty without a reference or when production's
            folder or snapshot is unreadable (logged as a warning).

        Raises
        ------
        RunError
            :meth:`ingest` was not called.
        """
        snap = self._need("snapshot", "ingest")
        if isinstance(reference, (str, Path)):
            try:
                reference = self._production(reference)
            except RunError as exc:
                log.warning("no drift reference: %s", exc)
                reference = None
        if isinstance(reference, Production):
            reference = reference.snapshot()
        if reference is None:
            self.drift = {}
            return self.drift
        with self._phase("evaluate", "drift"):
            tables = {t: snap.table(t) for t in ("interactions", "users", "items")}
            ref = {t: reference.table(t) for t in ("interactions", "users", "items")}
            f = self.config.features
            self.drift = drift(ref, tables, user_columns=f.user, item_columns=f.item_columns(tables["items"].columns))
            self.metrics.update(self.drift)
        return self.drift

    def _validation_users(self) -> np.ndarray:
        return evaluation.sample_users(self.split.validation_users, self.config.model.validation_users,
                                       self.config.model.seed)

    def _vector_validator(self):  # noqa: ANN202
        """``validate(user_vecs, item_vecs) -> NDCG@k`` on the sampled validation users (None without any)."""
        sp_, k = self.split, self.config.eval.k
        users = self._validation_users()
        if len(users) == 0:
            return None

        def validate(u: np.ndarray, i: np.ndarray) -> float:
            items, _ = evaluation.top_k(u, i, k, users=users, exclude=sp_.fit_seen)
            return evaluation.ranking_metrics(items, users, sp_.validation, k)[f"ndcg@{k}"]
        return validate

    def _validator(self, user_features, item_features):  # noqa: ANN001, ANN202
        by_vectors = self._vector_validator()
        if by_vectors is None:
            return None

        def validate(model) -> float:  # noqa: ANN001
            return by_vectors(*models.embeddings(model, user_features, item_features))
        return validate

    def fit(self) -> models.FitResult:
        """Fit the hybrid model and the baselines on the same split.

        LightFM models early-stop on validation NDCG@k (a seeded sample of ``model.validation_users`` users),
        then refit on all training data: the hybrid, pure-CF LightFM (``lightfm_cf``) and, with time-windowed
        features configured, the static hybrid without them (``lightfm_static``). EASE and implicit ALS
        (``eval.baselines``) choose their hyper-parameters on the same validation slice (:mod:`recsys_lab.models.baselines`).

        Returns
        -------
        models.FitResult
            The hybrid's fit; every model's fit is in :attr:`fits` / :attr:`baseline_fits`, its vectors in
            :attr:`vectors`.

        Raises
        ------
        RunError
            :meth:`build_features` was not called.
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
            for name, (uf, itf, fit_uf) in variants.items():
                progress.info(" LightFM %s", "model (hybrid)" if name == "hybrid" else name)
                fit_uf = uf if fit_uf is None else fit_uf
                res = models.fit(sp_.train, uf, itf, cfg.model, fit_matrix=sp_.fit, fit_user_features=fit_uf,
                                 validate=self._validator(fit_uf, itf) if use_val else None,
                                 sample_weight=sp_.train_weights if weighted else None,
                                 fit_sample_weight=sp_.fit_weights if weighted else None,
                                 show_progress=self.show_progress)
                self.fits[name] = res
                self.vectors[name] = models.embeddings(res.model, uf, itf)
                log.info("%s: %d epochs in %.2f s", name, res.best_epoch, res.fit_seconds)
            validate = self._vector_validator() if cfg.split.validation_fraction > 0 else None
            if "ease" in wanted:
                if len(ds.items) > cfg.eval.ease_max_items:
                    self._warn(f"baseline ease skipped: {len(ds.items)} items > eval.ease_max_items "
                               f"{cfg.eval.ease_max_items}")
                else:
                    progress.info(" EASE (lambda chosen on validation)")
                    self.baseline_fits["ease"] = baselines.fit_ease(sp_.fit, sp_.train, validate)
            if "als" in wanted:
                progress.info(" implicit ALS (%s)", "grid on validation" if len(cfg.eval.als_grid) > 1 else "one setting")
                self.baseline_fits["als"] = baselines.fit_als(sp_.fit_weights, sp_.train_weights, validate,
                                                              grid=cfg.eval.als_grid, seed=cfg.model.seed,
                                                              num_threads=cfg.model.num_threads)
            for name, b in self.baseline_fits.items():
                self.vectors[name] = (b.user_vecs, b.item_vecs)
        return self.fits["hybrid"]

    def _warn(self, message: str) -> None:
        """Record an evaluation warning: logged, kept in :attr:`warnings` (saved in ``data.json``, printed by
        the CLI summary and at the end of the report), not raised as a Python warning (no warning boxes in the
        report)."""
        self.warnings.append(message)
        log.warning("%s", message)

    def build_index(self) -> ann.MipsIndex | None:
        """Candidate generation per ``config.ann``: exact search (``auto`` below ``auto_min_items`` items, or
        ``exact``: returns None) or a MIPS index over the hybrid item vectors.

        Records ``ann.recall@k`` (index top-k vs exact top-k, unfiltered as candidate generation sees them,
        on a seeded sample of ``ann.recall_users`` real users' vectors; 1.0 for exact search) and the timings
        ``index.build`` (numba compile excluded), ``index.numba_compile``, ``index.ann_queries_per_s``,
        ``index.exact_queries_per_s`` and ``index.exact`` (1.0 when no index was built). Warns
        (:class:`recsys_lab.retrieval.ann.AnnRecallWarning`) when the recall is below ``ann.min_recall``.

        Returns
        -------
        ann.MipsIndex or None
            The index (also kept as :attr:`index`), None for exact search.

        Raises
        ------
        RunError
            :meth:`fit` was not called.
        """
        import warnings

        self._need("fits", "fit")
        k = self.config.eval.k
        u, i = self.vectors["hybrid"]
        cfg = self.config.ann
        method = cfg.resolved_method(len(i))
        rng = np.random.default_rng(self.config.model.seed)
        sample = np.sort(rng.choice(len(u), min(cfg.recall_users, len(u)), replace=False))
        q = u[sample]
        with self._phase("index"):
            t0 = time.perf_counter()
            exact, _ = evaluation.top_k(q, i, k)
            t_exact = time.perf_counter() - t0
            self.index = None
            recall, t_ann, build, compile_s = 1.0, t_exact, 0.0, 0.0
            if method != "exact":
                self.index = ann.MipsIndex(i, method=method, n_neighbors=cfg.n_neighbors, epsilon=cfg.epsilon,
                                           head_size=cfg.head_size or None, seed=self.config.model.seed,
                                           n_jobs=self.config.model.num_threads, target_recall=cfg.target_recall,
                                           k=k, queries=np.delete(u, sample, axis=0) if len(u) > len(sample) else u)
                t0 = time.perf_counter()
                approx, _ = self.index.query(q, k)
                t_ann = time.perf_counter() - t0
                recall = evaluation.recall_overlap(approx, exact)
                build, compile_s = self.index.build_seconds, self.index.compile_seconds
        log.info("candidate generation: %s over %d items, recall@%d %.4f on %d users", method, len(i), k, recall,
                 len(q))
        self.metrics[f"ann.recall@{k}"] = recall
        self.timings.update({"index.build": build, "index.numba_compile": compile_s,
                             "index.ann_queries_per_s": len(q) / max(t_ann, 1e-9),
                             "index.exact_queries_per_s": len(q) / max(t_exact, 1e-9),
                             "index.exact": float(self.index is None)})
        if recall < cfg.min_recall:
            warnings.warn(f"ann.recall@{k} {recall:.4f} is below ann.min_recall {cfg.min_recall} ({method} over "
                          f"{len(i)} items, {len(q)} users): raise ann.epsilon or ann.head_size, or use "
                          f"ann.method = 'exact'", ann.AnnRecallWarning, stacklevel=2)
        return self.index

    def evaluate(self) -> dict[str, float]:
        """Per-user metrics of the model and every baseline on the same test users, with 95 % bootstrap
        intervals and paired differences (model - baseline).

        Keys: plain names for the model (``ndcg@10``, ``ndcg@10.ci_low``, ``ndcg@10.ci_high``, ...),
        ``baseline.<name>.<metric>`` (same suffixes) for baselines, ``vs.<name>.<metric>`` (paired difference
        model - baseline, with ``.ci_low`` / ``.ci_high``), ``eval.*`` (users, protocol) and ``split.*``. Users
        are the warm test users (a seeded sample of at most ``eval.max_users``). Warns when the interval of
        NDCG@k is wider than ``eval.max_ci_width``.

        Returns
        -------
        dict of str to float
        """
        self._need("fits", "fit")
        sp_, cfg = self.split, self.config
        k, seed, n_boot = cfg.eval.k, cfg.model.seed, cfg.eval.bootstrap
        with self._phase("evaluate"):
            users = evaluation.sample_users(sp_.warm_test_users, cfg.eval.max_users, seed)
            self.eval_users = users
            candidates = {"model": self.vectors["hybrid"]}
            if "popularity" in cfg.eval.baselines:
                candidates["popularity"] = evaluation.popularity_vectors(sp_.train)
            candidates.update({n: v for n, v in self.vectors.items() if n != "hybrid"})
            for name, (u, i) in candidates.items():
                values, items = evaluation.per_user_metrics(u, i, sp_.test, users=users, exclude=sp_.train_seen,
                                                            k=k)
                self.per_user[name] = values
                self.recommended[name] = items
                prefix = "" if name == "model" else f"baseline.{name}."
                names = list(values)
                matrix = np.column_stack([values[n] for n in names])
                low, high = bootstrap_ci(matrix, n_resamples=n_boot, seed=seed)
                for j, metric in enumerate(names):
                    col = matrix[:, j]
                    self.metrics[prefix + metric] = float(np.nanmean(col)) if np.isfinite(col).any() else float("nan")
                    self.metrics[f"{prefix}{metric}.ci_low"] = float(low[j])
                    self.metrics[f"{prefix}{metric}.ci_high"] = float(high[j])
                self.metrics[f"{prefix}coverage@{k}"] = evaluation.coverage_at_k(items, len(i), k)
            model = self.per_user["model"]
            for name in self.per_user:
                if name == "model":
                    continue
                for metric in (f"ndcg@{k}", f"recall@{k}"):
                    d = paired_difference(model[metric], self.per_user[name][metric], n_resamples=n_boot, seed=seed)
                    key = f"vs.{name}.{metric}"
                    self.metrics.update({key: d["delta"], f"{key}.ci_low": d["ci_low"], f"{key}.ci_high": d["ci_high"]})
            self.metrics.update({f"split.{key}": value for key, value in sp_.stats.items()
                                 if key not in ("cutoff", "method")})
            self.metrics["split.eval_users"] = int(len(users))
            self.metrics["eval.n_users"] = int(len(users))
            self.metrics["eval.k"] = k
            self.metrics["fit.best_epoch"] = self.fits["hybrid"].best_epoch
            width = self.metrics[f"ndcg@{k}.ci_high"] - self.metrics[f"ndcg@{k}.ci_low"]
            self.metrics[f"eval.ndcg@{k}.ci_width"] = float(width)
            if width > cfg.eval.max_ci_width:
                self._warn(f"the 95% interval of ndcg@{k} is {width:.3f} wide (> eval.max_ci_width "
                           f"{cfg.eval.max_ci_width}) with {len(users)} evaluation users ({sp_.method} split): too "
                           "few users to tell models apart")
        return self.metrics

    def evaluate_cold_start(self, ns: tuple[int, ...] = (0, 1, 3, 5, 10), *, last: int = 10) -> dict[str, float]:
        """The cold-start path measured on this split (:func:`recsys_lab.models.foldin.cold_start_metrics`).

        Cold test users (no training interaction: held out by the per-user protocols, natural under
        ``time_global``; a seeded sample of at most ``eval.cold_max_users``, as are the warm users) are onboarded with their first ``n`` positives in time order, the rest being targets:
        fold-in against most-popular, per user and paired. Warm users: fold-in of their most recent training
        positives against the full retrain's vectors (how much of a retrain an update recovers).

        Parameters
        ----------
        ns : tuple of int
            Numbers of onboarding positives given to each cold user (default ``(0, 1, 3, 5, 10)``).
        last : int
            Warm users are folded in from their ``last`` most recent training positives (default 10).

        Returns
        -------
        dict of str to float
            ``cold.foldin.ndcg@k@n{n}``, ``cold.popularity.ndcg@k@n{n}`` (and ``recall``),
            ``cold.diff.ndcg@k@n{n}`` with ``.ci_low`` / ``.ci_high``, ``cold.n_users@n{n}``,
            ``warm.foldin_last10.ndcg@k``, ``warm.retrain.ndcg@k``, ``warm.popularity.ndcg@k``,
            ``warm.foldin_recovered``, ``warm.n_users``; also added to :attr:`metrics`.
        """
        self._need("vectors", "fit")
        inter, sp_, k = self.dataset.interactions, self.split, self.config.eval.k
        with self._phase("evaluate", "cold start"):
            u, i = self.vectors["hybrid"]
            cap, seed = self.config.eval.cold_max_users, self.config.model.seed
            cold = evaluation.sample_users(sp_.cold_users, cap, seed)
            warm = evaluation.sample_users(self.eval_users if self.eval_users is not None else sp_.warm_test_users,
                                           cap, seed)
            # only the sampled users' interactions are read (a 20 M log has ~0.2 M of them for 20,000 users)
            wanted = np.zeros(len(u), dtype=bool)
            wanted[cold] = wanted[warm] = True
            user_idx = inter["user_idx"].to_numpy()
            rows = np.flatnonzero(wanted[user_idx])
            user_idx, item_idx = user_idx[rows], inter["item_idx"].to_numpy()[rows]
            n_items = sp_.train_seen.shape[1]
            kept = np.flatnonzero(wanted)
            seen = sp_.train_seen[kept].tocoo()
            is_test = ~np.isin(user_idx.astype(np.int64) * n_items + item_idx,
                               kept[seen.row].astype(np.int64) * n_items + seen.col)
            ts = inter["ts"].to_numpy()[rows] if inter["ts"].null_count() == 0 else rows
            trained = np.flatnonzero(sp_.train.getnnz(axis=1) > 0)  # serving's prior: the average trained user
            fold = foldin.FoldIn(i, prior=foldin.average_user(u, trained) if len(trained) else None)
            m, self.onboarding, self.recovery = foldin.cold_start_metrics(
                i, u, np.asarray(sp_.train.sum(axis=0)).ravel(), user_idx=user_idx, item_idx=item_idx, ts=ts,
                positive=(inter["weight"].to_numpy()[rows] >= self.config.data.threshold), is_test=is_test,
                cold_users=cold, warm_users=warm, test=sp_.test, exclude=sp_.train_seen, ns=ns, k=k, last=last,
                foldin=fold, n_boot=self.config.eval.bootstrap, seed=seed)
            out = {(key[:-3] + ".ci_low" if key.endswith(".lo") else key[:-3] + ".ci_high" if key.endswith(".hi")
                    else key): value for key, value in m.items()}
            self.metrics.update(out)
        return out

    # -- embeddings as a product: beyond accuracy, fairness, intrinsic and extrinsic quality ----------------
    def evaluate_embeddings(self, production: "Production | str | Path | None" = None) -> dict[str, float]:
        """Beyond-accuracy, fairness and embedding-quality figures of this run (:mod:`recsys_lab.evaluation.beyond`,
        :mod:`recsys_lab.evaluation.embedding_quality`), added to :attr:`metrics` (every key usable as a ``gate.min`` / ``gate.max``
        bound); details for the report in :attr:`embedding_report`, notes on what was skipped in its ``notes``.

        Keys (``k = eval.k``; ``<c>`` = ``eval.item_category``, ``<g>`` a column of ``eval.user_groups``):

        - beyond accuracy of the lists scored by :meth:`evaluate`, for the model (plain) and every baseline
          (``baseline.<name>.``): ``novelty@k``, ``ild@k`` (cosine distance in the *model's* item embedding
          space for every list, so the values compare), ``ild.category@k``, ``arp@k``, ``aplt@k``, ``gini@k``,
          ``coverage@k``;
        - item-side fairness: ``fairness.item.<c>.<group>.exposure|catalog|interactions|ratio`` (model) and
          ``[baseline.<name>.]fairness.item.<c>.exposure_gap`` (largest |exposure share - interaction share|);
        - user-side fairness: ``[baseline.<name>.]fairness.user.<g>.ndcg@k.<group>`` with ``.ci_low``,
          ``.ci_high``, ``.n_users``, and ``fairness.user.<g>.ndcg@k.gap``;
        - intrinsic: ``embedding.item_coherence@k`` (the neighbours :func:`recsys_lab.serving.recommend.similar` serves:
          ``e_i·e_j + b_j``), ``embedding.item_coherence.cosine@k`` (cosine on ``e``), ``...chance``, and for the
          factor baselines ``baseline.<name>.embedding.item_coherence.cosine@k`` and
          ``baseline.lightfm_cf.probe.item.<c>.auc`` (what interactions alone teach when ``<c>`` is a feature);
          against ``production`` (shared ids): ``embedding.stability@k`` (mean Jaccard of item neighbour sets),
          ``recs.stability@k`` (mean Jaccard of the evaluation users' top-k lists) and ``recs.churn@k``
          (``1 - recs.stability@k``), ``embedding.shared_items``, ``recs.shared_users``;
        - extrinsic: ``probe.item.<c>.auc`` (macro AUC over one binary probe per category) and
          ``probe.user.<attr>.auc``, each with ``.baseline`` (majority class: 0.5), ``probe.user.<attr>.accuracy``
          and ``.accuracy.baseline``; future window (``time_global`` only): ``horizon.ndcg@k`` (``.ci_low``,
          ``.ci_high``), ``horizon.recall@k``, ``baseline.<name>.horizon.ndcg@k``, ``horizon.n_users``.

        Parameters
        ----------
        production : Production, path of the production run folder, or None
            For stability and churn (skipped with a note when None or unreadable).

        Returns
        -------
        dict of str to float
            The keys added.
        """
        self._need("recommended", "evaluate")
        cfg, sp_, k = self.config.eval, self.split, self.config.eval.k
        out: dict[str, float] = {}
        notes: list[str] = []
        report: dict[str, Any] = {"notes": notes}
        with self._phase("evaluate", "embeddings, beyond accuracy, fairness"):
            u, i = self.vectors["hybrid"]
            popularity = np.asarray(sp_.train.getnnz(axis=0), dtype=np.float64)
            n_train_users = int((sp_.train.getnnz(axis=1) > 0).sum())
            interactions = np.asarray(sp_.train.sum(axis=0), dtype=np.float64).ravel()
            cats, cat_names = self._item_categories(notes)
            report["categories"], report["category_names"] = cats, cat_names
            groups = {g: self._user_column(g, notes) for g in cfg.user_groups}
            for name, lists in self.recommended.items():
                prefix = "" if name == "model" else f"baseline.{name}."
                figures = beyond.beyond_accuracy(lists, popularity=popularity, n_users=n_train_users,
                                                 item_vecs=i[:, :-1], categories=cats, k=k)
                if cats is not None:
                    shares = beyond.group_exposure(lists, cats, cat_names, interactions=interactions)
                    figures[f"fairness.item.{cfg.item_category}.exposure_gap"] = max(
                        abs(v["exposure"] - v["interactions"]) for v in shares.values())
                    if name == "model":
                        report["item_exposure"] = shares
                        for group, v in shares.items():
                            figures.update({f"fairness.item.{cfg.item_category}.{group}.{key}": value
                                            for key, value in v.items()})
                for g, labels in groups.items():
                    if labels is None:
                        continue
                    per, gap = beyond.group_ndcg(self.per_user[name][f"ndcg@{k}"], labels[self.eval_users],
                                                 n_resamples=cfg.bootstrap, seed=self.config.model.seed)
                    base = f"fairness.user.{g}.ndcg@{k}"
                    for group, v in per.items():
                        figures.update({f"{base}.{group}": v["mean"], f"{base}.{group}.ci_low": v["ci_low"],
                                        f"{base}.{group}.ci_high": v["ci_high"], f"{base}.{group}.n_users": v["n_users"]})
                    figures[f"{base}.gap"] = gap
                    if name == "model":
                        report.setdefault("user_groups", {})[g] = per
                out.update({prefix + key: value for key, value in figures.items()})
            sample = evaluation.sample_users(np.arange(len(i)), cfg.embedding_max_items, self.config.model.seed)
            neighbours = self._served_neighbours(sample, k)
            report["neighbours"], report["neighbour_items"] = neighbours, sample
            out["embedding.n_items"] = int(len(sample))
            if cats is not None:
                coh, chance = embedding.coherence(neighbours, cats, sample)
                cos, _ = embedding.coherence(embedding.cosine_neighbours(i[:, :-1], k, sample), cats, sample)
                out.update({f"embedding.item_coherence@{k}": coh, f"embedding.item_coherence@{k}.chance": chance,
                            f"embedding.item_coherence.cosine@{k}": cos})
                probe_items = evaluation.sample_users(sample, _PROBE_MAX_ITEMS, self.config.model.seed)
                probe = embedding.multilabel_probe(i[probe_items], cats[probe_items], cat_names,
                                                   seed=self.config.model.seed, n_splits=3)
                report["item_probe"] = probe
                out.update({f"probe.item.{cfg.item_category}.{key}": value for key, value in probe.items()})
                if cfg.item_category in self.config.features.item_columns(self.snapshot.table("items").columns):
                    notes.append(f"{cfg.item_category!r} is an item feature of the model: its item vectors contain "
                                 f"the {cfg.item_category} embeddings, so coherence and the item probe read the "
                                 "feature back; the factor baselines (baseline.<name>.embedding.*, .probe.*) show "
                                 "what interactions alone teach")
                for name, (_, bi) in self.vectors.items():  # factor baselines: what interactions alone teach
                    if name == "hybrid" or bi.shape[1] > 1024:
                        continue
                    bcoh, _ = embedding.coherence(embedding.cosine_neighbours(bi, k, sample), cats, sample)
                    out[f"baseline.{name}.embedding.item_coherence.cosine@{k}"] = bcoh
                    if name == "lightfm_cf":  # probes cost ~1 s per category: the same family without features
                        bprobe = embedding.multilabel_probe(bi[probe_items], cats[probe_items], cat_names,
                                                            seed=self.config.model.seed, n_splits=3)
                        out[f"baseline.{name}.probe.item.{cfg.item_category}.auc"] = bprobe["auc"]
            out.update(self._user_probes(u, notes, report))
            out.update(self._horizon(notes))
            out.update(self._stability(production, notes))
            self.metrics.update(out)
        self.embedding_report = report
        for note in notes:
            log.info("evaluate_embeddings: %s", note)
        return out

    def _served_neighbours(self, items: np.ndarray, k: int) -> np.ndarray:
        """Item-to-item neighbours as serving returns them: through the index when one was built, else exact."""
        if self.index is not None:
            return ann.similar_items(self.index, items, k)[0]
        return embedding.inner_product_neighbours(self.vectors["hybrid"][1], items, k)[0]

    def _item_categories(self, notes: list[str]) -> tuple[np.ndarray | None, list]:
        column = self.config.eval.item_category
        items = self.snapshot.table("items") if self.snapshot is not None else pl.DataFrame()
        if column not in items.columns:
            notes.append(f"no item column {column!r} (eval.item_category): category diversity, coherence, the item "
                         "probe and item-side fairness skipped")
            return None, []
        labels = [None] * len(self.dataset.items)
        for item_id, value in zip(items["item_id"].to_list(), items[column].to_list()):
            labels[int(self.dataset.items.to_index(item_id))] = value
        return beyond.membership(labels)

    def _user_column(self, column: str, notes: list[str]) -> np.ndarray | None:
        """One label per user (index order; None when unknown); numeric columns in quantile buckets."""
        users = self.snapshot.table("users") if self.snapshot is not None else pl.DataFrame()
        if column not in users.columns or column == "user_id":
            notes.append(f"no user column {column!r}: skipped")
            return None
        values = users[column]
        if values.dtype.is_numeric() and values.n_unique() > 10:
            edges = np.unique(np.nanquantile(values.to_numpy().astype(np.float64), [0.2, 0.4, 0.6, 0.8]))
            bucket = np.searchsorted(edges, values.to_numpy(), side="right")
            bounds = np.r_[values.min(), edges, values.max()]
            text = [f"{bounds[b]:g}-{bounds[b + 1]:g}" if v is not None else None
                    for b, v in zip(bucket, values.to_list())]
        else:
            text = [None if v is None else str(v) for v in values.to_list()]
        labels = np.full(len(self.dataset.users), None, dtype=object)
        labels[self.dataset.users.to_index(users["user_id"].to_numpy())] = text
        return labels

    def _user_probes(self, u: np.ndarray, notes: list[str], report: dict) -> dict[str, float]:
        users = self.snapshot.table("users") if self.snapshot is not None else pl.DataFrame()
        wanted = self.config.eval.probe_user
        if wanted is None:
            wanted = tuple(c for c in users.columns if c != "user_id"
                           and (users[c].dtype.is_numeric() or users[c].n_unique() <= 50))
        if not wanted:
            notes.append("no user attribute to probe (the log has no user table)")
            return {}
        used = set(self.config.features.user)
        active = self.split.train.getnnz(axis=1) > 0
        out: dict[str, float] = {}
        for column in wanted:
            labels = self._user_column(column, notes)
            if labels is None:
                continue
            if column in used:
                notes.append(f"probe.user.{column}: {column!r} is also a model feature (features.user): the probe "
                             "reads the feature back, not what the embedding learnt")
            rows = active & np.array([x is not None for x in labels])
            r = embedding.probe(u[rows, :-1], labels[rows], seed=self.config.model.seed)
            report.setdefault("user_probes", {})[column] = r
            out.update({f"probe.user.{column}.{key}": r[key] for key in ("auc", "auc.baseline", "accuracy",
                                                                           "accuracy.baseline", "n")})
        return out

    def _horizon(self, notes: list[str]) -> dict[str, float]:
        """Ranking metrics on each user's test positives in the first ``eval.horizon_days`` after the cut-off."""
        sp_, cfg = self.split, self.config.eval
        if sp_.method != "time_global" or sp_.cutoff is None:
            notes.append(f"future-window task skipped: it needs one global cut-off (split.method = 'time_global'), "
                         f"this run used {sp_.method!r}")
            return {}
        from datetime import timedelta

        inter = self.dataset.interactions.filter(
            (pl.col("ts") >= sp_.cutoff) & (pl.col("ts") < sp_.cutoff + timedelta(days=cfg.horizon_days)))
        window = sp_.test.copy().tocsr()
        keys = inter["user_idx"].to_numpy() * window.shape[1] + inter["item_idx"].to_numpy()
        rows = np.repeat(np.arange(window.shape[0]), np.diff(window.indptr))
        mask = np.isin(rows.astype(np.int64) * window.shape[1] + window.indices, keys)
        window.data = np.where(mask, window.data, 0).astype(window.data.dtype)
        window.eliminate_zeros()
        users = self.eval_users[window[self.eval_users].getnnz(axis=1) > 0]
        out: dict[str, float] = {"horizon.days": cfg.horizon_days, "horizon.n_users": int(len(users))}
        if len(users) == 0:
            notes.append(f"future-window task: no evaluation user has a test positive in the first "
                         f"{cfg.horizon_days} days after the cut-off")
            return out
        candidates = {"model": self.vectors["hybrid"]}
        if "popularity" in self.recommended:
            candidates["popularity"] = evaluation.popularity_vectors(sp_.train)
        candidates.update({n: v for n, v in self.vectors.items() if n != "hybrid"})
        k = cfg.k
        for name, (uv, iv) in candidates.items():
            values, _ = evaluation.per_user_metrics(uv, iv, window, users=users, exclude=sp_.train_seen, k=k)
            prefix = "horizon." if name == "model" else f"baseline.{name}.horizon."
            out[f"{prefix}ndcg@{k}"] = float(np.mean(values[f"ndcg@{k}"]))
            out[f"{prefix}recall@{k}"] = float(np.mean(values[f"recall@{k}"]))
            if name == "model":
                lo, hi = bootstrap_ci(values[f"ndcg@{k}"], n_resamples=cfg.bootstrap, seed=self.config.model.seed)
                out.update({f"horizon.ndcg@{k}.ci_low": float(lo), f"horizon.ndcg@{k}.ci_high": float(hi)})
        return out

    def _stability(self, production: "Production | str | Path | None", notes: list[str]) -> dict[str, float]:
        if production is None:
            notes.append("no production run: embedding stability and recommendation churn skipped")
            return {}
        try:
            prod = self._production(production)
        except RunError as exc:
            notes.append(f"stability skipped: {exc}")
            return {}
        k, ds = self.config.eval.k, self.dataset
        ours, theirs = embedding.align(ds.items.ids, prod.item_ids)
        if len(ours) <= k:
            notes.append(f"stability skipped: only {len(ours)} items shared with production")
            return {}
        # neighbours within the shared items on both sides (a seeded sample of them as queries), as external ids
        q = evaluation.sample_users(np.arange(len(ours)), self.config.eval.embedding_max_items, self.config.model.seed)
        a = embedding.inner_product_neighbours(self.vectors["hybrid"][1][ours], q, k)[0]
        b = embedding.inner_product_neighbours(prod.item_vecs[theirs], q, k)[0]
        item_j = embedding.jaccard_overlap(ds.items.ids[ours][a], ds.items.ids[ours][b])
        out = {f"embedding.stability@{k}": float(np.nanmean(item_j)), "embedding.shared_items": int(len(ours))}
        u_ours, u_theirs = embedding.align(ds.users.ids[self.eval_users], prod.user_ids)
        if len(u_ours):
            pu, pi, _, _ = self._production_vectors(prod)
            mine = self.recommended["model"][u_ours]
            prod_lists, _ = evaluation.top_k(pu, pi, k, users=self.eval_users[u_ours], exclude=self.split.train_seen)
            user_j = embedding.jaccard_overlap(mine, prod_lists)
            out.update({f"recs.stability@{k}": float(np.nanmean(user_j)), f"recs.churn@{k}": float(1 - np.nanmean(user_j)),
                        "recs.shared_users": int(len(u_ours))})
        return out

    def evaluate_personas(self, production: "Production | str | Path | None" = None, *,
                          file: str | Path | None = None) -> dict[str, dict]:
        """Every persona's top-k from this run's item vectors by fold-in (:func:`recsys_lab.evaluation.personas.persona_lists`),
        and from production's when given (the report shows them side by side with moves). Saved by :meth:`save`
        as ``personas.json``.

        Parameters
        ----------
        production : Production, path of the production run folder, or None
        file : str or Path or None
            Persona file (default: the shipped MovieLens personas; personas whose items the data does not know
            get an empty list).

        Returns
        -------
        dict
            This run's lists, as :attr:`personas`; production's in :attr:`production_personas` (empty without one).
        """
        self._need("fits", "fit")
        ds, k = self.dataset, self.config.eval.k
        people = personas.load_personas(file)
        titles = dict(zip(ds.titles["item_id"].to_list(), ds.titles["title"].to_list()))
        self.personas = personas.persona_lists(people, self.vectors["hybrid"][1], ds.items.ids, titles, k=k)
        self.production_personas = {}
        if production is not None:
            try:
                prod = self._production(production)
                self.production_personas = personas.persona_lists(people, prod.item_vecs, prod.item_ids, titles, k=k)
            except RunError as exc:
                log.warning("personas: no production lists (%s)", exc)
        return self.personas

    def per_user_table(self) -> pl.DataFrame:
        """Per-user metrics of the model and every baseline: ``model, user_id`` plus one column per metric.

        Returns
        -------
        pl.DataFrame
            One row per (model, evaluated user); ``user_id`` is the external id.

        Raises
        ------
        RunError
            :meth:`evaluate` was not called.
        """
        if not self.per_user:
            raise RunError("call evaluate() before this step")
        ids = self.dataset.users.ids[self.eval_users]
        frames = [pl.DataFrame({"model": [name] * len(ids), "user_id": ids, **values})
                  for name, values in self.per_user.items()]
        return pl.concat(frames)

    def _production_vectors(self, prod: Production) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Production's vectors in this run's index space: unknown items can never be recommended (score
        -1e9), users production never saw get its cold-start path (:class:`recsys_lab.models.foldin.FoldIn` of their
        training items into production's item space, production's average user as prior)."""
        ds, sp_ = self.dataset, self.split
        d = prod.item_vecs.shape[1]

        ours_i, theirs_i = embedding.align(ds.items.ids, prod.item_ids)  # ids compared as text if types differ
        ifound = np.zeros(len(ds.items), bool)
        ifound[ours_i] = True
        items = np.zeros((len(ds.items), d), np.float32)
        items[ours_i] = prod.item_vecs[theirs_i]
        items[~ifound, -1] = -1e9
        ours_u, theirs_u = embedding.align(ds.users.ids, prod.user_ids)
        ufound = np.zeros(len(ds.users), bool)
        ufound[ours_u] = True
        users = np.zeros((len(ds.users), prod.user_vecs.shape[1]), np.float32)
        users[ours_u] = prod.user_vecs[theirs_u]
        cold = np.flatnonzero(~ufound)
        if len(cold):  # production's serving path for them: fold-in with its average user as prior
            x = sp_.train[cold].multiply(ifound[None, :].astype(np.float32)).tocsr()
            prior = foldin.average_user(prod.user_vecs)
            users[cold] = foldin.FoldIn(items, prior=prior).users(x)
        users[:, -1] = 1.0
        return users, items, int(ufound[self.eval_users].sum()), int(ifound.sum())

    def check_gate(self, production: "Production | str | Path | None" = None) -> GateResult:
        """Apply ``config.gate``: floors, ceilings, baselines, and champion/challenger against ``production``.

        Production (its saved vectors and id maps) is re-scored on *this* run's split and test users, and each
        ``gate.max_regression`` metric is compared per user, paired (:func:`recsys_lab.evaluation.intervals.paired_difference`).

        Parameters
        ----------
        production : Production, path of the production run folder, or None
            None: there is no production run (regression checks are skipped, saying so). A folder whose
            metrics or artifacts cannot be read fails every regression check, naming the file (fail closed).

        Returns
        -------
        GateResult
            Also stored as :attr:`gate` and saved as ``gate.json``.
        """
        self._need("metrics", "evaluate")
        cfg = self.config
        k, seed = cfg.eval.k, cfg.model.seed
        error: str | None = NO_PRODUCTION
        self.production_comparison = None
        if production is not None:
            try:
                prod = self._production(production)
                u, i, known_users, known_items = self._production_vectors(prod)
                values, _ = evaluation.per_user_metrics(u, i, self.split.test, users=self.eval_users,
                                                        exclude=self.split.train_seen, k=k)
                self.per_user["production"] = values
                comparison = {}
                for metric in cfg.gate.resolved(k).max_regression:
                    if metric not in values:
                        continue
                    d = paired_difference(self.per_user["model"][metric], values[metric],
                                          n_resamples=cfg.eval.bootstrap, seed=seed)
                    d.update(value=float(np.nanmean(self.per_user["model"][metric])),
                             production=float(np.nanmean(values[metric])))
                    comparison[metric] = d
                    self.metrics[f"production.{metric}"] = d["production"]
                    self.metrics[f"vs.production.{metric}"] = d["delta"]
                    self.metrics[f"vs.production.{metric}.ci_low"] = d["ci_low"]
                    self.metrics[f"vs.production.{metric}.ci_high"] = d["ci_high"]
                self.metrics["production.known_users"] = known_users
                self.metrics["production.known_items"] = known_items
                self.production_comparison = comparison
                error = None
            except RunError as exc:
                error = str(exc)
        self.gate = check_gate(self.metrics, cfg.gate, k=k, production=self.production_comparison,
                               production_error=error)
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
        """All steps in order (drift and gate against ``production``, a run folder or None); returns the metrics.

        Parameters
        ----------
        production : Production, str, Path or None
            Production's run folder (or its loaded evidence) for drift and the gate; None: no production run
            (no drift reference, the gate's regression checks are skipped).

        Returns
        -------
        dict of str to float
            :attr:`metrics` after every step.

        Raises
        ------
        RecsysLabError
            Whatever a step raises (see :meth:`ingest`, :meth:`build_features`, :meth:`fit` ...).
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
