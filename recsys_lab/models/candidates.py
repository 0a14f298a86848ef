"""Every candidate model of a retrain fit on one split: the LightFM variants and the baselines.

The LightFM variants (the hybrid, pure-CF LightFM with identity features, and with time-windowed features the
static hybrid) early-stop on a validation score and are refit on all training data
(:func:`recsys_lab.models.lightfm.fit`); EASE and implicit ALS choose their hyper-parameters on the same validation
slice (:mod:`recsys_lab.models.baselines`). The split and the feature matrices come in as arguments: this module
does not import :mod:`recsys_lab.split` or :mod:`recsys_lab.features` (same floor of the layers).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab.config import Config
from recsys_lab.models import baselines
from recsys_lab.models import lightfm as models

__all__ = ["Variant", "Candidates", "fit_candidates"]

log = logging.getLogger(__name__)
progress = logging.getLogger("recsys_lab.progress")


@dataclass(frozen=True)
class Variant:
    """The feature matrices of one LightFM variant.

    Attributes
    ----------
    user_features : csr_matrix of shape (n_users, n_user_features)
        For the final model (and its vectors).
    item_features : csr_matrix of shape (n_items, n_item_features)
    fit_user_features : csr_matrix or None
        For the early-stopping phase (features as of the validation cut-off); None: ``user_features``.
    """

    user_features: sp.csr_matrix
    item_features: sp.csr_matrix
    fit_user_features: sp.csr_matrix | None = None


@dataclass
class Candidates:
    """What :func:`fit_candidates` returns.

    Attributes
    ----------
    fits : dict of str to FitResult
        LightFM variants by name (``hybrid``, ``lightfm_cf``, ``lightfm_static``).
    baseline_fits : dict of str to BaselineFit
        ``ease``, ``als`` when fit.
    vectors : dict of str to (ndarray, ndarray)
        Every model's folded ``(user_vecs, item_vecs)``, float32, LightFM variants first.
    warnings : list of str
        What was skipped and why (e.g. EASE above ``eval.ease_max_items``).
    """

    fits: dict[str, models.FitResult] = field(default_factory=dict)
    baseline_fits: dict[str, baselines.BaselineFit] = field(default_factory=dict)
    vectors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def fit_candidates(split: Any, variants: dict[str, Variant], config: Config, *,
                   score: Callable[[np.ndarray, np.ndarray], float] | None,
                   show_progress: bool = False) -> Candidates:
    """Fit the LightFM ``variants`` and the configured baselines (``eval.baselines``) on ``split``.

    Parameters
    ----------
    split : recsys_lab.split.Split
        Its ``train``/``fit`` matrices and weights, and ``validation_fraction`` decides early stopping.
    variants : dict of str to Variant
        LightFM variants to fit, in order (``hybrid`` first).
    config : Config
        ``model`` (LightFM settings), ``eval`` (baselines, ``ease_max_items``, ``als_grid``), ``split``.
    score : callable or None
        ``score(user_vecs, item_vecs) -> float`` on the validation users (higher is better); None: no validation.
    show_progress : bool
        tqdm bars over epochs.

    Returns
    -------
    Candidates
    """
    cfg, out = config, Candidates()
    use_val = cfg.model.patience > 0 and cfg.split.validation_fraction > 0
    weighted = cfg.model.sample_weight == "weight"
    for name, v in variants.items():
        progress.info(" LightFM %s", "model (hybrid)" if name == "hybrid" else name)
        fit_uf = v.user_features if v.fit_user_features is None else v.fit_user_features
        validate = ((lambda m, uf=fit_uf, itf=v.item_features: score(*models.embeddings(m, uf, itf)))
                    if score and use_val else None)
        res = models.fit(split.train, v.user_features, v.item_features, cfg.model, fit_matrix=split.fit,
                         fit_user_features=fit_uf, validate=validate,
                         sample_weight=split.train_weights if weighted else None,
                         fit_sample_weight=split.fit_weights if weighted else None, show_progress=show_progress)
        out.fits[name], out.vectors[name] = res, models.embeddings(res.model, v.user_features, v.item_features)
        log.info("%s: %d epochs in %.2f s", name, res.best_epoch, res.fit_seconds)
    validate = score if cfg.split.validation_fraction > 0 else None
    wanted, n_items = set(cfg.eval.baselines), split.train.shape[1]
    skip = baselines.ease_skip_reason(split.train.shape[0], n_items, cfg.eval.ease_max_items) if "ease" in wanted else None
    if skip:
        out.warnings.append(f"baseline ease skipped: {skip}")
    elif "ease" in wanted:
        progress.info(" EASE (lambda chosen on validation)")
        out.baseline_fits["ease"] = baselines.fit_ease(split.fit, split.train, validate)
    if "als" in wanted:
        progress.info(" implicit ALS (%s)", "grid on validation" if len(cfg.eval.als_grid) > 1 else "one setting")
        out.baseline_fits["als"] = baselines.fit_als(split.fit_weights, split.train_weights, validate,
                                                     grid=cfg.eval.als_grid, seed=cfg.model.seed,
                                                     num_threads=cfg.model.num_threads)
    out.vectors.update({name: (b.user_vecs, b.item_vecs) for name, b in out.baseline_fits.items()})
    return out
