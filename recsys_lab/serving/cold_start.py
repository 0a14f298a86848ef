"""How a saved run's cold-start paths perform on its own split: the onboarding curve (fold-in of a cold user's first
n positives against most-popular) and how much of a retrain a fold-in update recovers for warm users.

The split is rebuilt from the run's snapshot with the run's configuration (features and split are deterministic),
then measured on the saved vectors: no model is refitted, and :mod:`recsys_lab.pipeline` is not imported.
"""

from __future__ import annotations

from pathlib import Path


from recsys_lab.config import Config
from recsys_lab.data import weights
from recsys_lab.data.warehouse import open_snapshot
from recsys_lab.errors import RunError
from recsys_lab.evaluation.ranking import sample_users
from recsys_lab.features import Dataset
from recsys_lab.evaluation.cold_start import OnboardingResult, RecoveryResult, evaluate_cold_start
from recsys_lab.serving.saved_run import UPDATE_WINDOW, ServedRun, served_run
from recsys_lab.prepare import dataset_and_split
from recsys_lab.split import Split

__all__ = ["cold_start_evaluation"]


def _rebuild(m: ServedRun, cfg: Config) -> tuple[Dataset, Split]:
    """The run's dataset and split, rebuilt from its snapshot as the retrain built them."""
    if not m.snapshot_path.is_file():
        raise RunError(f"{m.snapshot_path}: the run's data snapshot is gone from the warehouse")
    return dataset_and_split(open_snapshot(m.snapshot_path.stem, m.snapshot_path.parent.parent), cfg)


def cold_start_evaluation(runs_dir: str | Path, *, run: str = "production", ns: tuple[int, ...] = (0, 1, 3, 5, 10),
                          k: int = 10, last: int = UPDATE_WINDOW
                          ) -> tuple[dict[str, float], OnboardingResult, RecoveryResult]:
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
        ``cold.*`` and ``warm.*`` (see :func:`recsys_lab.evaluation.cold_start.evaluate_cold_start`).
    onboarding : OnboardingResult
        ``onboarding.table()`` feeds :func:`recsys_lab.report.plots.onboarding_curve`.
    recovery : RecoveryResult

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
    result = evaluate_cold_start(
        dataset.interactions, split, m.user_vecs, m.item_vecs, positive_threshold=weights.positive_threshold(cfg.data),
        warm_users=sample_users(split.warm_test_users, cfg.eval.max_users, cfg.model.seed),
        max_users=cfg.eval.cold_max_users, ns=ns, k=cfg.eval.k, last=last, n_boot=cfg.eval.bootstrap,
        seed=cfg.model.seed)
    return result.metrics, result.onboarding, result.recovery

