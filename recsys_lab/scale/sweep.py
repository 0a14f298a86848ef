"""``recsys-lab sweep``: a search over config keys on Ray Tune, decided with intervals.

The snapshot, features and split are built ONCE in the driver (:class:`TrialData`, without the test split: the
search never looks at it) and shared with every trial through the object store (``tune.with_parameters``, one
``ray.put``). Each trial fits LightFM with its config and reports the validation NDCG@k after every epoch (the
fit's ``on_epoch`` hook), so ASHA stops the hopeless ones at its milestones. A failed trial is recorded with its
error and the sweep goes on; SIGTERM ends the search with what finished recorded (nothing re-run). The best ``top`` trials are then re-run as ordinary retrains
(:func:`recsys_lab.runs.execute.execute`: run folders, reports), as is the base config, and each is compared with
the base run, paired per user, with a bootstrap interval (:func:`recsys_lab.runs.registry.paired_comparison`).

``runs/sweeps/<id>/`` holds ``sweep.json`` (settings, timings), ``trials.parquet`` / ``trials.json`` (one row per
trial: overrides, status ``finished`` / ``stopped`` (by ASHA) / ``failed`` / ``interrupted``, epochs, best validation, curve,
``seconds`` (the trial's own work in its worker: fit and per-epoch validation; the search's wall time times its
CPUs minus their sum is what Ray itself cost), error),
``winner.json``, ``comparison.json`` and ``report.html`` (:mod:`recsys_lab.scale.page`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.scale import page
from recsys_lab.scale.cluster import connect
from recsys_lab.scale.space import SweepConfig, expand, tune_space

__all__ = ["TrialData", "SweepResult", "prepare", "fit_trial", "run_sweep", "sweep_id"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialData:
    """What every trial needs, built once: the fit / validation part of the split and the hybrid's features.

    Attributes
    ----------
    train, train_weights, fit, fit_weights, fit_seen, validation : csr_matrix
        As in :class:`recsys_lab.split.Split` (no test split).
    user_features, item_features, fit_user_features : csr_matrix
        The hybrid's features (``fit_user_features`` at the validation cut-off with windowed features).
    users : ndarray of int64
        The validation users scored after each epoch (seeded sample of ``model.validation_users``).
    k : int
        ``eval.k``.
    """

    train: sp.csr_matrix
    train_weights: sp.csr_matrix
    fit: sp.csr_matrix
    fit_weights: sp.csr_matrix
    fit_seen: sp.csr_matrix
    validation: sp.csr_matrix
    user_features: sp.csr_matrix
    item_features: sp.csr_matrix
    fit_user_features: sp.csr_matrix
    users: np.ndarray
    k: int

    def writable(self) -> "TrialData":
        """A copy whose arrays can be written (the object store hands out read-only views; LightFM's kernels
        take writable buffers).

        Returns
        -------
        TrialData
        """
        return dataclasses.replace(self, **{f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)
                                            if f.name != "k"})


def prepare(config: Config) -> TrialData:
    """Ingest, features and split of ``config`` (the functions the retrain's steps call), kept for the trials.

    Parameters
    ----------
    config : Config

    Returns
    -------
    TrialData

    Raises
    ------
    DataError
        As the retrain's ingest and features steps.
    """
    from recsys_lab.data.sources import load_checked
    from recsys_lab.evaluation.ranking import sample_users
    from recsys_lab.prepare import dataset_and_split, hybrid_features

    snapshot, _ = load_checked(config.data, config.validate)  # the retrain's ingest and features steps
    ds, s = dataset_and_split(snapshot, config)
    uf, itf, fit_uf = hybrid_features(ds, s)  # the hybrid's inputs as Retrain.fit builds them
    users = sample_users(np.asarray(s.validation_users), config.model.validation_users, config.model.seed)
    return TrialData(s.train, s.train_weights, s.fit, s.fit_weights, s.fit_seen, s.validation, uf, itf,
                     uf if fit_uf is None else fit_uf, users, config.eval.k)


def fit_trial(data: TrialData, config: Config, report: Any = None) -> dict[str, Any]:
    """Fit one trial's model, calling ``report`` with each epoch's validation NDCG@k.

    Parameters
    ----------
    data : TrialData
    config : Config
        The trial's config (one thread; no refit: the trial only needs its validation curve).
    report : callable(dict), optional
        Called after each epoch with ``{"epoch", "ndcg", "seconds"}`` (Tune's ``report``).

    Returns
    -------
    dict
        ``best`` (validation NDCG@k), ``best_epoch``, ``epochs``, ``stopped_early`` (by patience).
    """
    from recsys_lab.evaluation.ranking import validation_scorer
    from recsys_lab.models import lightfm as models

    score = validation_scorer(data.validation, data.users, exclude=data.fit_seen, k=data.k)
    if score is None:
        raise RunError("no validation user: the sweep has nothing to score trials on")
    weighted = config.model.sample_weight == "weight"

    def validate(model: Any) -> float:
        return score(*models.embeddings(model, data.fit_user_features, data.item_features))

    def on_epoch(row: dict) -> None:
        if report is not None:
            report({"epoch": row["epoch"], "ndcg": row["validation"], "seconds": row["seconds"]})

    res = models.fit(data.train, data.user_features, data.item_features, config.model, fit_matrix=data.fit,
                     fit_user_features=data.fit_user_features, validate=validate,
                     sample_weight=data.train_weights if weighted else None,
                     fit_sample_weight=data.fit_weights if weighted else None, on_epoch=on_epoch)
    vals = [r["validation"] for r in res.history]
    return {"best": float(np.nanmax(vals)), "best_epoch": res.best_epoch, "epochs": len(vals),
            "stopped_early": res.stopped_early}


def _trial_config(base: Config, overrides: dict[str, Any]) -> Config:
    return base.replace({**overrides, "model.num_threads": 1, "model.refit": False})


def _trainable(params: dict, data: TrialData | None = None, base: dict | None = None) -> None:
    from ray import tune

    t0 = time.perf_counter()
    cfg = _trial_config(Config.from_dict(base), params["overrides"])
    curve: list[float] = []

    def report(row: dict) -> None:  # the curve so far rides along: a stopped trial's last result holds it
        curve.append(float(row["ndcg"]))
        tune.report({**row, "best": float(np.nanmax(curve)), "curve": json.dumps(curve),
                     "work_seconds": time.perf_counter() - t0})

    out = fit_trial(data.writable(), cfg, report=report)
    tune.report({"epoch": out["epochs"], "ndcg": out["best"], "seconds": 0.0, "best": out["best"],
                 "curve": json.dumps(curve), "finished": 1, "work_seconds": time.perf_counter() - t0})


@dataclass
class SweepResult:
    """The outcome of :func:`run_sweep`.

    Attributes
    ----------
    folder : Path
        ``runs/sweeps/<id>/``.
    trials : pl.DataFrame
        The trial table.
    winner : dict or None
        Best trial (overrides, validation); None when every trial failed.
    comparison : list of dict
        Per re-run trial: its run folder, the base run's, and NDCG@k's paired difference with its interval.
    timings : dict of str to float
    signal : int or None
        The signal (SIGTERM) that ended the search early: the table holds what finished, nothing was re-run.
    """

    folder: Path
    trials: pl.DataFrame
    winner: dict | None
    comparison: list[dict]
    timings: dict[str, float]
    signal: int | None = None


@contextmanager
def _sigterm_ends_the_search() -> Iterator[list[int]]:
    """Within the block, SIGTERM ends the Tune loop as Ctrl-C does (Tune listens to SIGUSR1 for that): the trials
    so far are returned and recorded. Yields a list that holds the signal once one arrived."""
    got: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
        got.append(signum)
        os.kill(os.getpid(), signal.SIGUSR1)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield got
    finally:
        signal.signal(signal.SIGTERM, previous)


def sweep_id() -> str:
    """A new sweep id (UTC timestamp and a random suffix, as run ids).

    Returns
    -------
    str
    """
    from recsys_lab.store.folder import new_run_id

    return new_run_id()


def _table(results: Any, trials: list[dict], epochs: int, *, interrupted: bool = False) -> pl.DataFrame:
    rows = []
    for j, r in enumerate(results):
        over = r.config["overrides"] if r.config else trials[j] if j < len(trials) else {}
        i = trials.index(over) if over in trials else j
        curve = json.loads(r.metrics.get("curve", "[]")) if r.metrics else []
        finished = bool(r.metrics and r.metrics.get("finished"))
        last = int(r.metrics.get("epoch", 0)) if r.metrics else 0
        # ASHA ends a trial at max_t before its last report: all epochs run is finished too
        status = ("failed" if r.error is not None else "finished" if finished or last >= epochs
                  else "interrupted" if interrupted else "stopped")
        rows.append({"trial": i, "overrides": json.dumps(over, sort_keys=True), "status": status,
                     "epochs": last,
                     "best_ndcg": float(np.nanmax(curve)) if curve else float("nan"),
                     "curve": json.dumps(curve),
                     "seconds": float(r.metrics.get("work_seconds", float("nan"))) if r.metrics else float("nan"),
                     "error": None if r.error is None else str(r.error).strip().splitlines()[-1][:300]})
    rows.sort(key=lambda row: row["trial"])
    return pl.DataFrame(rows, schema={"trial": pl.Int64, "overrides": pl.Utf8, "status": pl.Utf8, "epochs": pl.Int64,
                                      "best_ndcg": pl.Float64, "curve": pl.Utf8, "seconds": pl.Float64,
                                      "error": pl.Utf8})


def run_sweep(sweep: SweepConfig, *, runs_dir: str | Path = "runs", rerun: bool = True,
              promote_best: bool = False) -> SweepResult:
    """Run the sweep on Ray Tune, re-run the best trials as retrains and compare them with the base config.

    Parameters
    ----------
    sweep : SweepConfig
        A checked sweep (:func:`recsys_lab.scale.space.load_sweep`).
    runs_dir : str or Path
        Where the retrains' run folders and ``sweeps/<id>/`` go.
    rerun : bool
        Re-run the ``top`` trials and the base config as retrains (False: the search only).
    promote_best : bool
        The winner's re-run retrain asks for promotion: it becomes production when it succeeds and passes the
        normal gate (:func:`recsys_lab.runs.execute.execute` with ``promote_if_passed``; no rule of its own). The
        winner is re-run even when ``top`` is 0.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        ``promote_best`` without ``rerun`` (nothing is created).
    RunError
        Ray did not start (``RayStartError``).
    DataError
        The base config's data cannot be read (before Ray starts).
    """
    if promote_best and not rerun:
        raise ConfigError("promoting the best trial needs its re-run retrain: drop --no-rerun",
                          parameter="promote_best")
    runs_dir = Path(runs_dir)
    folder = runs_dir / "sweeps" / sweep_id()
    folder.mkdir(parents=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data = prepare(sweep.base)
    timings["prepare"] = time.perf_counter() - t0
    timings["ray_start"] = connect(sweep.ray)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    import ray

    # the trial table is ours: no per-trial CSV / JSON / TensorBoard files from Tune (measured overhead)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # ... so Tune's results reader finds no per-trial files and warns for every trial: the metrics are in memory
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    trials, epochs = expand(sweep), sweep.base.model.epochs
    search_alg = None
    if sweep.search == "optuna":  # Optuna's TPE proposes each trial from the results so far (seeded)
        from ray.tune.search.optuna import OptunaSearch

        search_alg = OptunaSearch(seed=sweep.seed)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=max(epochs, sweep.grace_epochs + 1),
                               grace_period=sweep.grace_epochs, reduction_factor=2)
                 if sweep.scheduler == "asha" else FIFOScheduler())
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_trainable, data=data, base=sweep.base.to_dict()), {"cpu": 1}),
        param_space={"overrides": tune_space(sweep) if sweep.search == "optuna" else tune.grid_search(trials)},
        tune_config=tune.TuneConfig(metric="ndcg", mode="max", scheduler=scheduler, reuse_actors=True,
                                    max_concurrent_trials=sweep.max_concurrent or cpus, search_alg=search_alg,
                                    num_samples=sweep.samples if search_alg is not None else 1),
        run_config=tune.RunConfig(name=folder.name, storage_path=str((folder / "tune").resolve()), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)))
    t1 = time.perf_counter()
    with _sigterm_ends_the_search() as stopped_by:
        results = tuner.fit()
    timings["search"] = time.perf_counter() - t1
    table = _table(results, trials, epochs, interrupted=bool(stopped_by))
    table.write_parquet(folder / "trials.parquet")
    atomic_write_json(folder / "trials.json", table.to_dicts())
    ok = table.filter(pl.col("status") != "failed").sort(pl.col("best_ndcg").fill_nan(None), descending=True,
                                                         nulls_last=True)
    winner = None if ok.is_empty() else {"trial": ok["trial"][0], "overrides": json.loads(ok["overrides"][0]),
                                         "validation_ndcg": ok["best_ndcg"][0]}
    atomic_write_json(folder / "winner.json", winner)
    comparison: list[dict] = []
    top = max(sweep.top, 1) if promote_best else sweep.top
    if rerun and winner is not None and top > 0 and not stopped_by:
        t2 = time.perf_counter()
        comparison = _rerun(sweep, ok.head(top), runs_dir, promote_best=promote_best)
        timings["rerun"] = time.perf_counter() - t2
        atomic_write_json(folder / "comparison.json", comparison)
    timings["total"] = time.perf_counter() - t0
    slots = min(sweep.max_concurrent or cpus, cpus)
    work = float(table["seconds"].fill_nan(None).sum() or 0.0)
    timings["trial_work"] = work  # the trials' own seconds; the rest of slots x search is Ray's (and idle slots)
    timings["ray_overhead_per_trial"] = (slots * timings["search"] - work) / max(table.height, 1)
    settings = {"trials": sweep.trials, "slots": slots, "search": sweep.search, "scheduler": sweep.scheduler,
                "space": {k: list(v) for k, v in sweep.space.items()}, "base": sweep.base.to_dict(),
                "timings": timings, "signal": stopped_by[0] if stopped_by else None}
    atomic_write_json(folder / "sweep.json", settings)
    page.write(folder, table, winner, comparison, settings)
    return SweepResult(folder, table, winner, comparison, timings, stopped_by[0] if stopped_by else None)


def _rerun(sweep: SweepConfig, top: pl.DataFrame, runs_dir: Path, *, promote_best: bool = False) -> list[dict]:
    """The ``top`` trials and the base config as ordinary retrains; each trial paired against the base run. With
    ``promote_best`` the first (the winner) goes through the normal gate and promotion."""
    from recsys_lab.evaluation import keys
    from recsys_lab.runs.execute import execute
    from recsys_lab.runs.registry import paired_comparison

    metric = keys.at("ndcg", sweep.base.eval.k)
    base = execute(sweep.base, runs_dir=runs_dir)
    out = []
    for rank, row in enumerate(top.iter_rows(named=True)):
        over = json.loads(row["overrides"])
        promote = promote_best and rank == 0
        res = execute(sweep.base.replace(over), runs_dir=runs_dir, promote_if_passed=promote)
        entry = {"trial": row["trial"], "overrides": over, "run": res.run_id, "status": res.status,
                 "base_run": base.run_id, "base_status": base.status}
        if promote:
            entry["promotion"] = {"requested": True, "promoted": bool(res.promoted),
                                  "gate_passed": None if res.gate is None else bool(res.gate.passed),
                                  "reason": res.reason if res.gate is None else res.gate.reason}
        if res.status == "succeeded" and base.status == "succeeded":
            pairs = paired_comparison(base.run_dir, res.run_dir, n_resamples=sweep.base.eval.bootstrap,
                                      seed=sweep.base.model.seed).filter(pl.col("metric") == metric)
            entry["vs_base"] = pairs.to_dicts()[0] if pairs.height else None
        out.append(entry)
    return out
