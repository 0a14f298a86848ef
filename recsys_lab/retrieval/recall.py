"""How good candidate generation is: an index's top-k against exact top-k (recall@k) and its speed, measured on
real users' vectors; what a retrain records as ``ann.recall@k`` and the ``index.*`` timings."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from recsys_lab.retrieval.ann import AnnRecallWarning, MipsIndex
from recsys_lab.retrieval.topk import top_k

__all__ = ["recall_overlap", "RecallResult", "measure_recall", "split_queries"]


def recall_overlap(approx: np.ndarray, exact: np.ndarray) -> float:
    """Recall of approximate neighbour lists against exact ones: mean |approx_i ∩ exact_i| / |exact_i|.

    Parameters
    ----------
    approx, exact : ndarray of shape (n, k), int64

    Returns
    -------
    float
        In [0, 1]: the share of exact neighbours the approximate lists hold, over all ``n * k`` slots.
    """
    k = exact.shape[1]
    n = exact.shape[0]
    codes_e = np.arange(n)[:, None] * (1 + max(exact.max(), approx.max())) + exact
    codes_a = np.arange(n)[:, None] * (1 + max(exact.max(), approx.max())) + approx
    return float(np.isin(codes_a, codes_e).sum() / (n * k))


@dataclass
class RecallResult:
    """Candidate generation measured: the index (None for exact search), its recall and its speed.

    Attributes
    ----------
    index : MipsIndex or None
    method : str
        The resolved method (``exact`` or an index route).
    recall : float
        Index top-k vs exact top-k over the queries (1.0 for exact search).
    n_queries : int
    exact_seconds, ann_seconds, build_seconds, compile_seconds : float
        Exact and index query time over all queries, index build (compile excluded) and numba compile.
    """

    index: "MipsIndex | None"
    method: str
    recall: float
    n_queries: int
    exact_seconds: float
    ann_seconds: float
    build_seconds: float = 0.0
    compile_seconds: float = 0.0

    def warn_below(self, min_recall: float, k: int) -> None:
        """Warn (:class:`AnnRecallWarning`) when :attr:`recall` is below ``min_recall``, saying what to change.

        Parameters
        ----------
        min_recall : float
            ``ann.min_recall``.
        k : int
            The list length the recall was measured at.
        """
        if self.recall < min_recall:
            warnings.warn(f"ann.recall@{k} {self.recall:.4f} is below ann.min_recall {min_recall} ({self.method}, "
                          f"{self.n_queries} users): raise ann.epsilon or ann.head_size, or use ann.method = 'exact'",
                          AnnRecallWarning, stacklevel=3)

    @property
    def timings(self) -> dict[str, float]:
        """``index.build, ``index.numba_compile``, ``index.ann_queries_per_s``, ``index.exact_queries_per_s``,
        ``index.exact`` (1.0 when no index was built)."""
        n = self.n_queries
        return {"index.build": self.build_seconds, "index.numba_compile": self.compile_seconds,
                "index.ann_queries_per_s": n / max(self.ann_seconds, 1e-9),
                "index.exact_queries_per_s": n / max(self.exact_seconds, 1e-9),
                "index.exact": float(self.index is None)}


def measure_recall(item_vecs: np.ndarray, queries: np.ndarray, k: int, *, method: str, n_neighbors: int = 30,
                   epsilon: float = 0.1, head_size: int | None = None, seed: int = 0, n_jobs: int = 1,
                   target_recall: float = 0.96, calibration: np.ndarray | None = None) -> RecallResult:
    """Build the index of ``method`` (none for ``exact``) and measure its top-k recall against exact top-k.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d), float32
        Folded item vectors.
    queries : ndarray of shape (n_queries, d), float32
        User vectors to query with (unfiltered, as candidate generation sees them).
    k : int
        List length.
    method : str
        ``exact`` or one of :data:`recsys_lab.retrieval.ann.METHODS`.
    n_neighbors, epsilon, head_size, seed, n_jobs, target_recall
        Passed to :class:`~recsys_lab.retrieval.ann.MipsIndex`.
    calibration : ndarray of shape (n, d), optional
        Other users' vectors the index calibrates its head and search depth on (never the measured ``queries``).

    Returns
    -------
    RecallResult
    """
    t0 = time.perf_counter()
    exact, _ = top_k(queries, item_vecs, k)
    t_exact = time.perf_counter() - t0
    if method == "exact":
        return RecallResult(index=None, method=method, recall=1.0, n_queries=len(queries), exact_seconds=t_exact,
                            ann_seconds=t_exact)
    index = MipsIndex(item_vecs, method=method, n_neighbors=n_neighbors, epsilon=epsilon, head_size=head_size,
                      seed=seed, n_jobs=n_jobs, target_recall=target_recall, k=k, queries=calibration)
    t0 = time.perf_counter()
    approx, _ = index.query(queries, k)
    t_ann = time.perf_counter() - t0
    return RecallResult(index=index, method=method, recall=recall_overlap(approx, exact), n_queries=len(queries),
                        exact_seconds=t_exact, ann_seconds=t_ann, build_seconds=index.build_seconds,
                        compile_seconds=index.compile_seconds)


def split_queries(user_vecs: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded sample of ``n`` users' vectors to measure recall on, and the other users' to calibrate on.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d)
    n : int
        Size of the measured sample (``ann.recall_users``; all users when fewer).
    seed : int

    Returns
    -------
    queries : ndarray of shape (min(n, n_users), d)
        The sampled users in index order.
    calibration : ndarray of shape (n_users - len(queries), d)
        Every other user (all users when the sample takes them all).
    """
    sample = np.sort(np.random.default_rng(seed).choice(len(user_vecs), min(n, len(user_vecs)), replace=False))
    rest = np.delete(user_vecs, sample, axis=0) if len(user_vecs) > len(sample) else user_vecs
    return user_vecs[sample], rest
