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
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import ann, evaluation, models
from ._fs import atomic_write_bytes, atomic_write_json
from .config import Config
from .datasets import load
from .errors import RunError
from .features import Dataset, build_dataset, identity_features
from .gate import GateResult, check_gate
from .run_folder import RunFolder
from .split import Split, temporal_split
from .validate import ValidationReport, clean, drift, validate
from .warehouse import Snapshot, ingest

__all__ = ["Retrain", "run", "BASELINES"]

log = logging.getLogger(__name__)

BASELINES = ("lightfm_cf", "lightfm_static", "popularity")
"""Baselines trained and evaluated on the same split: pure-CF LightFM (identity features), the hybrid without
time-windowed features (only when windows are configured) and most-popular."""


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

    @contextmanager
    def _phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

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
        return out

    # -- steps -------------------------------------------------------------------------------------------
    def ingest(self) -> Snapshot:
        """Load the configured source, run the data guardrails, and store an immutable warehouse snapshot
        (a no-op when the data is unchanged).

        Raises
        ------
        DataFileError, DownloadError
            See :mod:`recsys_lab.datasets`.
        DataValidationError
            A fail-level guardrail found problems (every failed check is listed); nothing is stored.
        """
        with self._phase("ingest"):
            cfg = self.config.data
            tables, weight_range = load(cfg)
            self.validation = validate(tables.interactions, tables.users, tables.items, self.config.validate,
                                       weight_range=weight_range, positive_threshold=cfg.positive_threshold,
                                       weight_transform=cfg.weight_transform, source=tables.source)
            self.snapshot = ingest({"interactions": clean(tables.interactions), "users": tables.users,
                                    "items": tables.items}, cfg.warehouse, source=tables.source)
        return self.snapshot

    def build_features(self) -> Dataset:
        """Id maps and feature matrices from the snapshot (weight transform applied), then the temporal split."""
        snap = self._need("snapshot", "ingest")
        with self._phase("features"):
            with snap.connect() as con:
                inter, users, items = (con.sql(f"SELECT * FROM {t}").pl() for t in ("interactions", "users", "items"))
            if self.config.data.weight_transform == "log1p":
                inter = inter.with_columns(pl.col("weight").log1p())
            self.dataset = build_dataset(inter, users, items, self.config.features)
            self.split = temporal_split(self.dataset.interactions, self.dataset.shape, self.config.split,
                                        positive_threshold=self.config.data.positive_threshold)
        return self.dataset

    def check_drift(self, reference: Snapshot | None) -> dict[str, float]:
        """Drift of this run's snapshot against ``reference`` (production's), added to the metrics as
        ``drift.*`` (see :func:`recsys_lab.validate.drift`). Without a reference: empty, nothing added."""
        snap = self._need("snapshot", "ingest")
        if reference is None:
            self.drift = {}
            return self.drift
        with self._phase("evaluate"):
            tables = {t: snap.table(t) for t in ("interactions", "users", "items")}
            ref = {t: reference.table(t) for t in ("interactions", "users", "items")}
            f = self.config.features
            self.drift = drift(ref, tables, user_columns=f.user, item_columns=f.item)
            self.metrics.update(self.drift)
        return self.drift

    def _validator(self, user_features, item_features):
        sp_ = self.split
        k = self.config.eval.k
        users = np.flatnonzero((sp_.validation.getnnz(axis=1) > 0) & (sp_.fit.getnnz(axis=1) > 0))
        if len(users) == 0:
            return None

        def validate(model) -> float:
            u, i = models.embeddings(model, user_features, item_features)
            items, _ = evaluation.top_k(u, i, k, users=users, exclude=sp_.fit_seen)
            return evaluation.ranking_metrics(items, users, sp_.validation, k)[f"ndcg@{k}"]
        return validate

    def fit(self) -> models.FitResult:
        """Fit the hybrid model and the baselines on the same split (early stopping on validation NDCG@k,
        then refit on all training data): pure-CF LightFM, and with time-windowed features configured the
        static hybrid without them (``lightfm_static``), so their effect is measured on the same split."""
        ds, sp_ = self._need("dataset", "build_features"), self.split
        with self._phase("fit"):
            variants = {"hybrid": (ds.user_features_at(sp_.cutoff).matrix, ds.item_features.matrix,
                                   ds.user_features_at(sp_.validation_cutoff).matrix),
                        "lightfm_cf": (identity_features(ds.users, "user").matrix,
                                       identity_features(ds.items, "item").matrix, None)}
            if ds.config.windows:
                variants["lightfm_static"] = (ds.user_features.matrix, ds.item_features.matrix, None)
            use_val = self.config.model.patience > 0 and self.config.split.validation_fraction > 0
            for name, (uf, itf, fit_uf) in variants.items():
                fit_uf = uf if fit_uf is None else fit_uf
                res = models.fit(sp_.train, uf, itf, self.config.model, fit_matrix=sp_.fit, fit_user_features=fit_uf,
                                 validate=self._validator(fit_uf, itf) if use_val else None,
                                 show_progress=self.show_progress)
                self.fits[name] = res
                self.vectors[name] = models.embeddings(res.model, uf, itf)
                log.info("%s: %d epochs in %.2f s", name, res.best_epoch, res.fit_seconds)
        return self.fits["hybrid"]

    def build_index(self) -> ann.MipsIndex:
        """pynndescent MIPS index over the hybrid item vectors; records ``ann.recall@k`` against exact top-k
        for all users (unfiltered, as candidate generation sees them) and query speeds."""
        self._need("fits", "fit")
        k = self.config.eval.k
        u, i = self.vectors["hybrid"]
        with self._phase("index"):
            cfg = self.config.ann
            self.index = ann.MipsIndex(i, method=cfg.method, n_neighbors=cfg.n_neighbors, epsilon=cfg.epsilon,
                                       seed=self.config.model.seed, n_jobs=self.config.model.num_threads)
            t0 = time.perf_counter()
            approx, _ = self.index.query(u, k)
            t_ann = time.perf_counter() - t0
            t0 = time.perf_counter()
            exact, _ = evaluation.top_k(u, i, k)
            t_exact = time.perf_counter() - t0
        self.metrics[f"ann.recall@{k}"] = evaluation.recall_overlap(approx, exact)
        self.timings.update({"index.build": self.index.build_seconds, "index.numba_compile": self.index.compile_seconds,
                             "index.ann_queries_per_s": len(u) / max(t_ann, 1e-9),
                             "index.exact_queries_per_s": len(u) / max(t_exact, 1e-9)})
        return self.index

    def evaluate(self) -> dict[str, float]:
        """Metrics of the hybrid model (plain names) and of each baseline (``baseline.<name>.<metric>``) on
        the warm test users, plus split statistics (``split.*``)."""
        self._need("fits", "fit")
        sp_, k = self.split, self.config.eval.k
        with self._phase("evaluate"):
            users = sp_.warm_test_users
            candidates = {**self.vectors, "popularity": evaluation.popularity_vectors(sp_.train)}
            for name, (u, i) in candidates.items():
                m = evaluation.evaluate(u, i, sp_.test, users=users, exclude=sp_.train_seen, k=k)
                m.pop("n_users")
                prefix = "" if name == "hybrid" else f"baseline.{name}."
                self.metrics.update({prefix + key: value for key, value in m.items()})
            self.metrics.update({f"split.{key}": value for key, value in sp_.stats.items() if key != "cutoff"})
            self.metrics["split.eval_users"] = int(len(users))
            self.metrics["fit.best_epoch"] = self.fits["hybrid"].best_epoch
        return self.metrics

    def check_gate(self, production: dict[str, float] | None = None) -> GateResult:
        """Apply ``config.gate`` to the metrics (floors, and regression against ``production``'s metrics).

        The CLI promotes a run only when this passed; the outcome is saved as ``gate.json``.
        """
        self._need("metrics", "evaluate")
        self.gate = check_gate(self.metrics, self.config.gate, production)
        return self.gate

    def save(self) -> Path | None:
        """Write metrics, params, history, timings and artifacts into ``run_dir`` (atomically, file by file).

        Returns the run folder, or None when ``run_dir`` is None.
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
            _save_npz(folder.features, user_tokens=np.array(ds.user_features.tokens),
                      item_tokens=np.array(ds.item_features.tokens))
            models.save_model(self.fits["hybrid"].model, folder.model)
            if self.index is not None:
                self.index.save(folder.index)
            atomic_write_json(folder.params, self.config.to_dict())
            atomic_write_json(folder.history, self.history)
            atomic_write_json(folder.metrics, self.metrics)
            atomic_write_json(folder.data, self.data_info)
            if self.gate is not None:
                atomic_write_json(folder.gate, self.gate.to_dict())
        atomic_write_json(folder.timings, self.timings)
        return self.run_dir

    def run_all(self, production: dict[str, float] | None = None, reference: Snapshot | None = None
                ) -> dict[str, float]:
        """All steps in order (drift against ``reference``, gate against ``production``); returns the metrics."""
        self.ingest()
        self.build_features()
        self.fit()
        self.build_index()
        self.evaluate()
        self.check_drift(reference)
        self.check_gate(production)
        self.save()
        return self.metrics


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def run(config: Config | dict | None = None, *, run_dir: str | Path | None = None,
        production: dict[str, float] | None = None, reference: Snapshot | None = None) -> Retrain:
    """Run every step of a retrain in this process (same code as the notebook); returns the finished job.

    ``production`` (metrics) and ``reference`` (snapshot) are what the gate and the drift compare against.
    """
    job = Retrain(config, run_dir=run_dir)
    job.run_all(production, reference)
    return job
