"""How a saved run's cold-start paths perform on its own split: the onboarding curve (fold-in of a cold user's first
n positives against most-popular) and how much of a retrain a fold-in update recovers for warm users.

The split is rebuilt from the run's snapshot with the run's configuration (features and split are deterministic),
then measured on the saved vectors: no model is refitted, and :mod:`recsys_lab.pipeline` is not imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recsys_lab.config import Config
from recsys_lab.data import weights
from recsys_lab.data.warehouse import open_snapshot
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.evaluation.ranking import sample_users
from recsys_lab.features import Dataset, build_dataset
from recsys_lab.models import foldin
from recsys_lab.serving.saved_run import UPDATE_WINDOW, ServedRun, served_run
from recsys_lab.split import Split, make_split

__all__ = ["cold_start_evaluation"]


def _rebuild(m: ServedRun, cfg: Config) -> tuple[Dataset, Split]:
    """The run's dataset and split, rebuilt from its snapshot as the retrain built them (``Retrain.build_features``)."""
    if not m.snapshot_path.is_file():
        raise RunError(f"{m.snapshot_path}: the run's data snapshot is gone from the warehouse")
    snap = open_snapshot(m.snapshot_path.stem, m.snapshot_path.parent.parent)
    with snap.connect() as con:
        inter, users, items = (con.sql(f"SELECT * FROM {t}").pl() for t in ("interactions", "users", "items"))
    inter = inter.with_columns(m.weight())
    dataset = build_dataset(inter, users, items, cfg.features)
    if cfg.eval.k > len(dataset.items):
        raise ConfigError(f"must be at most the catalogue size ({len(dataset.items)} items), got {cfg.eval.k}",
                          parameter="eval.k")
    split = make_split(dataset.interactions, dataset.shape, cfg.split, positive_threshold=weights.positive_threshold(cfg.data),
                       seed=cfg.split.seed, windows=bool(cfg.features.windows))
    return dataset, split


def _measure(dataset: Dataset, split: Split, u: np.ndarray, i: np.ndarray, cfg: Config, ns: tuple[int, ...],
             last: int) -> tuple[dict[str, float], foldin.OnboardingResult, foldin.RecoveryResult]:
    """The retrain's cold-start measurement (``Retrain.evaluate_cold_start``) on saved vectors ``u``, ``i``."""
    inter, k = dataset.interactions, cfg.eval.k
    cap, seed = cfg.eval.cold_max_users, cfg.model.seed
    cold = sample_users(split.cold_users, cap, seed)
    warm = sample_users(split.warm_test_users, cap, seed)
    wanted = np.zeros(len(u), dtype=bool)
    wanted[cold] = wanted[warm] = True
    user_idx = inter["user_idx"].to_numpy()
    rows = np.flatnonzero(wanted[user_idx])
    user_idx, item_idx = user_idx[rows], inter["item_idx"].to_numpy()[rows]
    n_items = split.train_seen.shape[1]
    kept = np.flatnonzero(wanted)
    seen = split.train_seen[kept].tocoo()
    is_test = ~np.isin(user_idx.astype(np.int64) * n_items + item_idx,
                       kept[seen.row].astype(np.int64) * n_items + seen.col)
    ts = inter["ts"].to_numpy()[rows] if inter["ts"].null_count() == 0 else rows
    trained = np.flatnonzero(split.train.getnnz(axis=1) > 0)  # serving's prior: the average trained user
    fold = foldin.FoldIn(i, prior=foldin.average_user(u, trained) if len(trained) else None)
    m, onboarding, recovery = foldin.cold_start_metrics(
        i, u, np.asarray(split.train.sum(axis=0)).ravel(), user_idx=user_idx, item_idx=item_idx, ts=ts,
        positive=(inter["weight"].to_numpy()[rows] >= weights.positive_threshold(cfg.data)), is_test=is_test,
        cold_users=cold, warm_users=warm, test=split.test, exclude=split.train_seen, ns=ns, k=k, last=last,
        foldin=fold, n_boot=cfg.eval.bootstrap, seed=seed)
    out = {(key[:-3] + ".ci_low" if key.endswith(".lo") else key[:-3] + ".ci_high" if key.endswith(".hi")
            else key): value for key, value in m.items()}
    return out, onboarding, recovery


def cold_start_evaluation(runs_dir: str | Path, *, run: str = "production", ns: tuple[int, ...] = (0, 1, 3, 5, 10),
                          k: int = 10, last: int = UPDATE_WINDOW
                          ) -> tuple[dict[str, float], foldin.OnboardingResult, foldin.RecoveryResult]:
    """The onboarding curve and the fold-in-vs-retrain comparison of a run's own vectors on its own split.

    The split is rebuilt from the run's snapshot with the run's configuration (features and split are
    deterministic); the measurement is the retrain's own (``cold.*``, ``warm.*`` in its ``metrics.json``) applied
    to the saved vectors.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        Run id, unique prefix, ``latest`` or ``production`` (default).
    ns : tuple of int
        Numbers of onboarding positives given to each cold user (default ``(0, 1, 3, 5, 10)``).
    k : int
        List length of the NDCG (overrides the run's ``eval.k``; default 10).
    last : int
        Warm users are folded in from their ``last`` most recent training positives (default
        :data:`~recsys_lab.serving.saved_run.UPDATE_WINDOW`).

    Returns
    -------
    metrics : dict
        ``cold.*`` and ``warm.*`` (see :func:`recsys_lab.models.foldin.cold_start_metrics`).
    onboarding : foldin.OnboardingResult
        ``onboarding.table()`` feeds :func:`recsys_lab.report.plots.onboarding_curve`.
    recovery : foldin.RecoveryResult

    Raises
    ------
    RunError
        Unknown run, missing artifacts or snapshot, or vectors that do not match the rebuilt id maps.
    ConfigError
        ``k`` larger than the catalogue.
    """
    m = served_run(runs_dir, run)
    cfg = Config.from_dict(m.config).replace({"eval.k": k})
    dataset, split = _rebuild(m, cfg)
    if dataset.shape != (len(m.user_vecs), len(m.item_vecs)):
        raise RunError(f"run {m.run_id}: rebuilt features have shape {dataset.shape}, vectors "
                       f"{(len(m.user_vecs), len(m.item_vecs))}")
    return _measure(dataset, split, m.user_vecs, m.item_vecs, cfg, ns, last)

