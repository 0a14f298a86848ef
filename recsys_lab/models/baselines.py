"""Strong baselines fit on the same split as the model: EASE (closed form) and implicit ALS.

Both are returned as user and item vectors whose dot product is the score, so they go through the same
evaluation path as LightFM (exact top-k, per-user metrics, intervals). Hyper-parameters are chosen on the
validation slice through a callback (``validate(user_vecs, item_vecs) -> float``, higher is better), then the
chosen setting is refit on all training data. This module imports ``implicit``; it does not import the
evaluation code (the layers exchange arrays).

- EASE: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019, https://arxiv.org/abs/1905.03375 :
  ``P = (X^T X + lambda I)^-1``, ``B = -P / diag(P)``, ``diag(B) = 0``; scores ``X B``.
- ALS: Hu, Koren, Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008, via the
  ``implicit`` library (https://benfred.github.io/implicit/), confidence ``1 + alpha * weight``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab.config import ALS_GRID
from recsys_lab.errors import ModelError

__all__ = ["BaselineFit", "EASE_LAMBDAS", "ALS_GRID", "ease_vectors", "fit_ease", "fit_als"]

log = logging.getLogger(__name__)

EASE_LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
"""EASE L2 strengths tried on the validation slice (Steck 2019 reports 200-1000 on his data sets)."""


_MAX_DENSE_CELLS = 400_000_000  # EASE keeps users x items dense (1.6 GB of float32 at most)


@dataclass
class BaselineFit:
    """A fitted baseline.

    Attributes
    ----------
    name : str
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32
        ``user_vecs @ item_vecs.T`` are the scores.
    params : dict
        The chosen hyper-parameters.
    grid : list of dict
        Every setting tried with its validation score (``{"params": ..., "validation": float}``).
    fit_seconds : float
        Wall time of the search and the refit, in seconds.
    """

    name: str
    user_vecs: np.ndarray
    item_vecs: np.ndarray
    params: dict
    grid: list[dict] = field(default_factory=list)
    fit_seconds: float = 0.0


def ease_vectors(train: sp.csr_matrix, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """EASE as vectors: user vectors are the rows of ``X`` and item vectors the columns of ``B``.

    Parameters
    ----------
    train : csr_matrix of shape (n_users, n_items)
        Binary training positives.
    lam : float
        L2 strength lambda (> 0).

    Returns
    -------
    user_vecs : ndarray of shape (n_users, n_items), float32
    item_vecs : ndarray of shape (n_items, n_items), float32
        ``B.T``: ``user_vecs @ item_vecs.T = X B``.

    Raises
    ------
    ModelError
        The catalogue is too large for a dense users x items matrix.
    """
    n_users, n_items = train.shape
    if n_users * n_items > _MAX_DENSE_CELLS:
        raise ModelError(f"EASE needs a dense {n_users} x {n_items} matrix: too large (lower eval.ease_max_items "
                         "or drop 'ease' from eval.baselines)")
    x = train.astype(np.float64)
    g = (x.T @ x).toarray()
    g[np.diag_indices(n_items)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    b[np.diag_indices(n_items)] = 0.0
    return train.toarray().astype(np.float32), np.ascontiguousarray(b.T, dtype=np.float32)


def fit_ease(fit: sp.csr_matrix, train: sp.csr_matrix, validate: Callable[[np.ndarray, np.ndarray], float] | None,
             lambdas: tuple[float, ...] = EASE_LAMBDAS) -> BaselineFit:
    """Choose lambda on the validation slice (fit on ``fit``), then refit EASE on ``train``.

    Parameters
    ----------
    fit, train : csr_matrix of shape (n_users, n_items)
        Positives before the validation cut and all training positives.
    validate : callable(user_vecs, item_vecs) -> float, optional
        Validation score (e.g. NDCG@k); None takes lambda = 500.
    lambdas : tuple of float
        Candidates.

    Returns
    -------
    BaselineFit
    """
    t0 = time.perf_counter()
    grid = []
    best = 500.0
    if validate is not None:
        for lam in lambdas:
            grid.append({"params": {"lambda": lam}, "validation": float(validate(*ease_vectors(fit, lam)))})
        best = max(grid, key=lambda r: r["validation"])["params"]["lambda"]
    u, i = ease_vectors(train, best)
    log.info("ease: lambda %s", best)
    return BaselineFit("ease", u, i, {"lambda": best}, grid, time.perf_counter() - t0)


def _als(weights: sp.csr_matrix, factors: int, reg: float, alpha: float, seed: int, num_threads: int,
         iterations: int) -> tuple[np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "blas"):  # implicit parallelises itself; BLAS threads only contend (and it warns)
        model = AlternatingLeastSquares(factors=factors, regularization=reg, alpha=alpha, iterations=iterations,
                                        calculate_training_loss=False, random_state=seed, num_threads=num_threads)
        model.fit(weights.tocsr().astype(np.float32), show_progress=False)
    u = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    i = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    if not (np.isfinite(u).all() and np.isfinite(i).all()):
        raise ModelError(f"implicit ALS diverged (factors {factors}, regularization {reg}, alpha {alpha})")
    return u, i


def fit_als(fit_weights: sp.csr_matrix, train_weights: sp.csr_matrix,
            validate: Callable[[np.ndarray, np.ndarray], float] | None, *,
            grid: tuple[tuple[int, float, float], ...] = ALS_GRID, seed: int = 42, num_threads: int = 2,
            iterations: int = 15) -> BaselineFit:
    """Choose (factors, regularization, alpha) on the validation slice, then refit implicit ALS on all training data.

    Parameters
    ----------
    fit_weights, train_weights : csr_matrix of shape (n_users, n_items), float32
        Positives with their (transformed) weights: confidence is ``1 + alpha * weight``.
    validate : callable(user_vecs, item_vecs) -> float, optional
        Validation score; None takes the grid's first setting.
    grid : tuple of (int, float, float)
        Candidate (factors, regularization, alpha).
    seed : int
    num_threads : int
        implicit's threads (0: all cores).
    iterations : int
        ALS sweeps (default 15, implicit's default).

    Returns
    -------
    BaselineFit
        ``params``: ``factors, regularization, alpha, iterations``.

    Raises
    ------
    ModelError
        Non-finite factors.
    """
    t0 = time.perf_counter()
    tried = []
    best = grid[0]
    if validate is not None and len(grid) > 1:
        for setting in grid:
            u, i = _als(fit_weights, *setting, seed, num_threads, iterations)
            tried.append({"params": dict(zip(("factors", "regularization", "alpha"), setting)),
                          "validation": float(validate(u, i))})
        top = max(tried, key=lambda r: r["validation"])["params"]
        best = (top["factors"], top["regularization"], top["alpha"])
    u, i = _als(train_weights, *best, seed, num_threads, iterations)
    params = dict(zip(("factors", "regularization", "alpha"), best), iterations=iterations)
    log.info("als: %s", params)
    return BaselineFit("als", u, i, params, tried, time.perf_counter() - t0)
