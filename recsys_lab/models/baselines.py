"""Strong baselines fit on the same split as the model: EASE (closed form) and implicit ALS.

Both are returned as user and item vectors whose dot product is the score, so they go through the same
evaluation path as LightFM (exact top-k, per-user metrics, intervals). Hyper-parameters are chosen on the
validation slice through a callback (``validate(user_vecs, item_vecs) -> float``, higher is better), then the
chosen setting is refit on all training data. This module imports ``implicit``; it does not import the
evaluation code (the layers exchange arrays).

- EASE: Steck, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW 2019, https://arxiv.org/abs/1905.03375 :
  ``P = (X^T X + lambda I)^-1``, ``B = -P / diag(P)``, ``diag(B) = 0``; scores ``X B``. With fewer users than
  items the same scores come from the users x users matrix through the Woodbury identity (one eigendecomposition
  shared by every lambda): the cost is cubic in ``min(users, items)``.
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

__all__ = ["BaselineFit", "EASE_LAMBDAS", "ALS_GRID", "ease_route", "ease_size", "ease_skip_reason", "ease_vectors",
           "fit_ease", "fit_als"]

log = logging.getLogger(__name__)

EASE_LAMBDAS = (50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)
"""EASE L2 strengths tried on the validation slice (Steck 2019 reports 200-1000 on his data sets)."""


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


_MAX_DENSE_CELLS = 400_000_000  # EASE keeps users x items dense (1.6 GB of float32 at most)
_BUDGET_CELLS = 70_000_000  # users x items above which EASE is skipped: ~1.1 GiB of working set (16 bytes a cell)
_BLOCK_CELLS = 1 << 23  # float64 cells per block temporary when forming EASE's item vectors (64 MiB)
_USER_ROUTE = 0.73
"""The user route is cheaper below ``0.73 * n_items`` users: its two eigendecompositions (the validation grid's and
the refit's) cost 8.7 Cholesky inversions each (measured at 4,000: 9.5 vs 1.09 CPU-s), the item route inverts seven
times (six lambdas and the refit), and ``(7 / (2 * 8.7)) ** (1 / 3) = 0.73``."""


def ease_route(n_users: int, n_items: int) -> str:
    """Which exact form of EASE is cheaper for a users x items matrix.

    Parameters
    ----------
    n_users, n_items : int
        Shape of the training matrix.

    Returns
    -------
    str
        ``"users"`` (the Woodbury form: one eigendecomposition of the users x users matrix ``X X^T`` shared by
        every lambda) below ``0.73 * n_items`` users, else ``"items"`` (one Cholesky inversion of the items x items
        matrix ``X^T X + lambda I`` per lambda).
    """
    return "users" if n_users < _USER_ROUTE * n_items else "items"


def ease_size(n_users: int, n_items: int) -> int:
    """EASE's cost as a catalogue size: the item count whose item route costs what the cheaper route costs.

    The cost is cubic in it (measured on a loaded 2-core box, six lambdas and the refit: 44 CPU-s at 6,000,
    93 CPU-s at 8,000); ``eval.ease_max_items`` bounds it.

    Parameters
    ----------
    n_users, n_items : int
        Shape of the training matrix.

    Returns
    -------
    int
        ``n_items`` on the item route, ``n_users / 0.73`` on the user route.
    """
    return int(n_items) if ease_route(n_users, n_items) == "items" else int(np.ceil(n_users / _USER_ROUTE))


def ease_skip_reason(n_users: int, n_items: int, max_items: int) -> str | None:
    """Why EASE should not run on a users x items matrix (None: it fits in about a minute and 2 GiB).

    Parameters
    ----------
    n_users, n_items : int
        Shape of the training matrix.
    max_items : int
        Bound on :func:`ease_size` (``eval.ease_max_items``).

    Returns
    -------
    str or None
        The reason, naming the sizes and the setting, or None.
    """
    size = ease_size(n_users, n_items)
    if size > max_items:
        return (f"{n_users} users x {n_items} items cost as much as {size} items > eval.ease_max_items {max_items}"
                if size != n_items else f"{n_items} items > eval.ease_max_items {max_items}")
    if n_users * n_items > _BUDGET_CELLS:
        return f"{n_users} users x {n_items} items > {_BUDGET_CELLS:,} dense cells"
    return None


def _fortran(sym: np.ndarray) -> np.ndarray:
    """A symmetric matrix as a Fortran-ordered view of the same buffer (its transpose if C-ordered), so LAPACK
    overwrites it in place instead of copying it (scipy's sparse ``toarray`` returns either order)."""
    return sym if sym.flags.f_contiguous else sym.T


class _Ease:
    """EASE of one binary matrix ``X``, factorised once and evaluated for any lambda.

    Item space: ``P = (X^T X + lambda I)^-1`` by Cholesky in place (LAPACK ``potrf`` + ``potri``), one per lambda;
    user vectors are the rows of ``X``, item vectors ``B^T = I - P / diag(P)`` by rows, diagonal zero.

    User space (fewer users than items, see :func:`ease_route`; Woodbury): with ``X X^T = U diag(t) U^T`` and
    ``Y = U^T X``, ``X P = (X X^T + lambda I)^-1 X = U diag(1 / (t + lambda)) Y`` and
    ``diag(P)_j = (1 - sum_k Y_kj^2 / (t_k + lambda)) / lambda``. The scores ``X B = X - X P / diag(P)`` are then
    ``U Z`` with ``Z_kj = Y_kj (1 - 1 / ((t_k + lambda) diag(P)_j))`` (``X = U Y``): user vectors are the rows of
    ``U``, item vectors the columns of ``Z``. One eigendecomposition of the users x users matrix serves every
    lambda, and each lambda costs O(users x items).
    """

    def __init__(self, train: sp.csr_matrix) -> None:
        import scipy.linalg as sl
        from threadpoolctl import threadpool_limits

        self.shape = n_users, n_items = train.shape
        if n_users * n_items > _MAX_DENSE_CELLS:
            raise ModelError(f"EASE needs a dense {n_users} x {n_items} matrix: too large (lower "
                             "eval.ease_max_items or drop 'ease' from eval.baselines)")
        self.x = sp.csr_matrix(train, dtype=np.float64)
        self.route = ease_route(n_users, n_items)
        self.dense: np.ndarray | None = None
        if self.route == "users":
            k = (self.x @ self.x.T).toarray()
            with threadpool_limits(1, "blas"):  # measured: 2 BLAS threads made syevd 2-9x slower on a loaded box
                self.t, self.u = sl.eigh(_fortran(k), overwrite_a=True, check_finite=False)
            del k
            self.y = (self.x.T @ self.u).T  # U^T X, users x items (Fortran order: item blocks are contiguous)
            self.u32 = np.ascontiguousarray(self.u, dtype=np.float32)

    def vectors(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """User and item vectors whose dot products are the EASE scores ``X B`` at this lambda."""
        if self.route == "users":
            return self.u32, self._user_space(lam)
        return self._item_space(lam)

    def _item_space(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        from scipy.linalg import lapack
        from threadpoolctl import threadpool_limits

        n_items = self.shape[1]
        g = (self.x.T @ self.x).toarray()
        g[np.diag_indices(n_items)] += lam
        with threadpool_limits(1, "blas"):  # measured: 1 thread used 2.4x less CPU than 2 on a shared 2-core box
            c, info = lapack.dpotrf(_fortran(g), lower=0, overwrite_a=1, clean=0)
            if info == 0:
                c, info = lapack.dpotri(c, lower=0, overwrite_c=1)  # upper triangle of P = (X^T X + lambda I)^-1
        if info != 0:
            raise ModelError(f"EASE: X^T X + {lam} I is not positive definite (LAPACK info {info})")
        del g
        d = np.diag(c).copy()
        item = np.empty((n_items, n_items), dtype=np.float32)
        step = max(64, _BLOCK_CELLS // n_items)
        for lo in range(0, n_items, step):  # rows lo:hi of B^T = -P[lo:hi] / diag(P)[lo:hi], P mirrored
            hi = min(lo + step, n_items)
            rows = np.empty((hi - lo, n_items))
            rows[:, :lo] = c[:lo, lo:hi].T
            rows[:, lo:hi] = np.triu(c[lo:hi, lo:hi]) + np.triu(c[lo:hi, lo:hi], 1).T
            rows[:, hi:] = c[lo:hi, hi:]
            rows /= -d[lo:hi, None]
            rows[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
            item[lo:hi] = rows
        del c  # no view of it is left: the float64 matrix is freed before the dense user vectors are made
        if self.dense is None:  # the same user vectors for every lambda
            self.dense = self.x.astype(np.float32).toarray()
        return self.dense, item

    def _user_space(self, lam: float) -> np.ndarray:
        n_users, n_items = self.shape
        inv = 1.0 / (self.t + lam)
        out = np.empty((n_items, n_users), dtype=np.float32)
        step = max(64, _BLOCK_CELLS // n_users)
        for lo in range(0, n_items, step):
            y = self.y[:, lo:lo + step]
            d = (1.0 - inv @ (y * y)) / lam  # diag(P) of these items
            out[lo:lo + step] = (y * (1.0 - np.outer(inv, 1.0 / d))).T
        return out


def ease_vectors(train: sp.csr_matrix, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """EASE as vectors whose dot products are the scores ``X B`` (route by shape, see :func:`ease_route`).

    Parameters
    ----------
    train : csr_matrix of shape (n_users, n_items)
        Binary training positives.
    lam : float
        L2 strength lambda (> 0).

    Returns
    -------
    user_vecs : ndarray of shape (n_users, r), float32
    item_vecs : ndarray of shape (n_items, r), float32
        ``user_vecs @ item_vecs.T = X B``. Item route (``r = n_items``): the rows of ``X`` and ``B.T``; user route
        (``r = n_users``): the eigenvectors of ``X X^T`` and the scores rotated into them.

    Raises
    ------
    ModelError
        The catalogue is too large for a dense users x items matrix.
    """
    return _Ease(train).vectors(lam)


def fit_ease(fit: sp.csr_matrix, train: sp.csr_matrix, validate: Callable[[np.ndarray, np.ndarray], float] | None,
             lambdas: tuple[float, ...] = EASE_LAMBDAS) -> BaselineFit:
    """Choose lambda on the validation slice (fit on ``fit``), then refit EASE on ``train``.

    ``fit`` is factorised once for all lambdas in the user route (:class:`_Ease`); the item route inverts one
    items x items matrix per lambda (measured: an eigendecomposition costs 4.6 inversions, so sharing one across
    six lambdas saves nothing there).

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

    Raises
    ------
    ModelError
        The catalogue is too large for a dense users x items matrix.
    """
    t0 = time.perf_counter()
    grid = []
    best = 500.0
    if validate is not None:
        solver = _Ease(fit)
        for lam in lambdas:
            grid.append({"params": {"lambda": lam}, "validation": float(validate(*solver.vectors(lam)))})
        best = max(grid, key=lambda r: r["validation"])["params"]["lambda"]
        del solver  # release the factorisation of `fit` before factorising `train`
    u, i = _Ease(train).vectors(best)
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
