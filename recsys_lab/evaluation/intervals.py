"""Uncertainty of per-user metrics: bootstrap intervals over users, paired differences between two models.

A metric averaged over users is a sample mean; its 95 % interval comes from resampling users with replacement
(percentile bootstrap, Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13) through
``scipy.stats.bootstrap`` (https://docs.scipy.org/doc/scipy/reference/generated/scipy.stats.bootstrap.html).
Two models scored on the same users are compared *paired*: the interval is that of the mean per-user
difference, much narrower than two overlapping marginal intervals suggest (the approach of ranx's
``compare`` and of Sakai, "Statistical Reform in Information Retrieval?", SIGIR Forum 2014). A difference is
called significant when its interval excludes 0. Seeded: the same inputs give the same intervals.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_ci", "paired_difference"]

_BATCH_CELLS = 1 << 22  # resampled values held at once (32 MiB of float64)


def bootstrap_ci(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over users, for one or several metrics at once.

    Parameters
    ----------
    values : ndarray of shape (n_users,) or (n_users, n_metrics), float
        Per-user metric values (NaN rows are dropped per metric's column).
    n_resamples : int
        Bootstrap resamples (default 1000).
    seed : int
        Seed of the resampling.
    confidence : float
        Coverage of the interval (default 0.95).

    Returns
    -------
    low, high : ndarray of shape () or (n_metrics,), float64
        NaN where fewer than 2 users have a value.
    """
    x = np.asarray(values, dtype=np.float64)
    single = x.ndim == 1
    x = x.reshape(len(x), -1)
    low = np.full(x.shape[1], np.nan)
    high = np.full(x.shape[1], np.nan)
    rows = ~np.isnan(x).any(axis=1)
    if x.shape[1] > 1 and not rows.all():  # metrics with gaps in different rows: one call per column
        for j in range(x.shape[1]):
            low[j], high[j] = bootstrap_ci(x[:, j], n_resamples=n_resamples, seed=seed, confidence=confidence)
    elif rows.sum() >= 2:
        xs = x[rows]
        if np.ptp(xs, axis=0).max() == 0:  # constant: no spread (scipy warns on degenerate samples)
            low, high = xs[0].copy(), xs[0].copy()
        else:
            from scipy import stats  # 1-3 s to import: paid by the evaluation that needs it, not by every import

            res = stats.bootstrap((xs,), np.mean, n_resamples=n_resamples, method="percentile", axis=0,
                                  vectorized=True, confidence_level=confidence, rng=np.random.default_rng(seed),
                                  batch=max(1, _BATCH_CELLS // xs.size))
            low = np.asarray(res.confidence_interval.low, dtype=np.float64).reshape(-1)
            high = np.asarray(res.confidence_interval.high, dtype=np.float64).reshape(-1)
    return (low[0], high[0]) if single else (low, high)


def paired_difference(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> dict[str, float]:
    """Mean per-user difference ``a - b`` with its bootstrap interval (paired: the same users, row by row).

    Parameters
    ----------
    a, b : ndarray of shape (n_users,), float
        One metric for two models on the same users, in the same order. Rows where either is NaN are dropped.
    n_resamples, seed, confidence
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        ``delta`` (mean of ``a - b``), ``ci_low``, ``ci_high``, ``significant`` (the interval excludes 0),
        ``relative`` (``delta / mean(b)``, NaN when ``mean(b)`` is 0) and ``n_users``.

    Raises
    ------
    ValueError
        ``a`` and ``b`` differ in length.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired difference needs the same users: shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    if len(d) == 0:
        return {"delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "significant": False,
                "relative": float("nan"), "n_users": 0}
    low, high = bootstrap_ci(d, n_resamples=n_resamples, seed=seed, confidence=confidence)
    base = float(b[keep].mean())
    return {"delta": float(d.mean()), "ci_low": float(low), "ci_high": float(high),
            "significant": bool(low > 0 or high < 0),
            "relative": float(d.mean() / base) if base else float("nan"), "n_users": int(len(d))}
