"""Approximate maximum inner product search (MIPS) over item vectors with pynndescent.

pynndescent's ``"dot"`` metric L2-normalises the data (cosine neighbours, not the model's ranking; recall@10
0.63 against true MIPS on ML-100k, DESIGN.md) and its ``"inner_product"`` metric treats non-positive inner
products as infinitely far, while LightFM scores are often negative. We use the MIPS-to-Euclidean reduction
instead (Bachrach et al., "Speeding Up the Xbox Recommender System Using a Euclidean Transformation for
Inner-Product Spaces", RecSys 2014): with ``M = max_i |x_i|`` each item becomes ``[x_i, sqrt(M^2 - |x_i|^2)]``
and each query ``[q, 0]``; then ``|q' - x'|^2 = |q|^2 + M^2 - 2 q·x``, so Euclidean nearest neighbours
are exactly the largest inner products. Recall is always measured against exact numpy top-k.
This is the only module that imports ``pynndescent``; its numba compile (~30 s per fresh process) is a fixed
cost reported separately as ``compile_seconds``.
"""

from __future__ import annotations

import logging
import pickle
import time
from pathlib import Path

import numpy as np

from ._fs import atomic_write_bytes, load_pickle
from .errors import ModelError

__all__ = ["MipsIndex", "augment_items", "augment_queries", "load_index"]

log = logging.getLogger(__name__)


def augment_items(item_vecs: np.ndarray) -> tuple[np.ndarray, float]:
    """Append ``sqrt(M^2 - |x|^2)`` to each item vector.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d)

    Returns
    -------
    augmented : ndarray of shape (n_items, d + 1), float32
    max_norm : float
        ``M``, the largest item norm.
    """
    x = np.asarray(item_vecs, dtype=np.float64)
    sq = np.einsum("ij,ij->i", x, x)
    m2 = float(sq.max()) if len(sq) else 0.0
    extra = np.sqrt(np.maximum(m2 - sq, 0.0))
    return np.hstack([x, extra[:, None]]).astype(np.float32), float(np.sqrt(m2))


def augment_queries(user_vecs: np.ndarray) -> np.ndarray:
    """Append a zero to each query vector: ndarray of shape (n, d + 1), float32."""
    q = np.asarray(user_vecs, dtype=np.float32)
    return np.hstack([q, np.zeros((q.shape[0], 1), np.float32)])


_WARM: set[int] = set()


def _warm_up(dim: int, epsilon: float) -> float:
    """Build and query a tiny index once per process and dimension, so numba compiles here, not in the
    timed build. Returns the seconds spent (0.0 when already warm)."""
    from pynndescent import NNDescent

    if dim in _WARM:
        return 0.0
    t0 = time.perf_counter()
    data = np.random.default_rng(0).normal(size=(64, dim)).astype(np.float32)
    idx = NNDescent(data, metric="euclidean", n_neighbors=8, random_state=0, low_memory=True)
    idx.prepare()
    idx.query(data[:2], k=2, epsilon=epsilon)
    _WARM.add(dim)
    return time.perf_counter() - t0


class MipsIndex:
    """pynndescent NN-descent graph over augmented item vectors; queries return the largest inner products.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d), float32
        Item vectors (biases folded in, see :func:`recsys_lab.models.embeddings`).
    n_neighbors : int
        Graph degree (default 30, pynndescent's default).
    epsilon : float
        Query-time search breadth (default 0.2; see :class:`recsys_lab.config.AnnConfig`).
    seed : int
        ``random_state`` of the index.
    n_jobs : int or None
        Threads for graph construction (None: numba's default).

    Attributes
    ----------
    build_seconds : float
        Wall time of graph construction and search preparation, numba compilation excluded.
    compile_seconds : float
        Time to build and query a tiny warm-up index first: numba's JIT cost in this process (0.0 when an
        earlier index of the same dimension already paid it).
    """

    def __init__(self, item_vecs: np.ndarray, *, n_neighbors: int = 30, epsilon: float = 0.2, seed: int = 42,
                 n_jobs: int | None = None) -> None:
        from pynndescent import NNDescent

        if item_vecs.ndim != 2 or len(item_vecs) < 2:
            raise ModelError(f"MIPS index needs a 2-D array of at least 2 item vectors, got shape {item_vecs.shape}")
        if not np.isfinite(item_vecs).all():
            raise ModelError("MIPS index: item vectors contain NaN or inf")
        self.epsilon = epsilon
        self.n_items, self.dim = item_vecs.shape
        data, self.max_norm = augment_items(item_vecs)
        self.compile_seconds = _warm_up(data.shape[1], epsilon)
        t0 = time.perf_counter()
        self._index = NNDescent(data, metric="euclidean", n_neighbors=min(n_neighbors, len(data) - 1),
                                random_state=seed, n_jobs=n_jobs, low_memory=True)
        self._index.prepare()
        self.build_seconds = time.perf_counter() - t0

    def query(self, user_vecs: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k items by inner product.

        Parameters
        ----------
        user_vecs : ndarray of shape (n, d), float32
        k : int

        Returns
        -------
        items : ndarray of shape (n, k), int64
            Internal item indices, best first.
        scores : ndarray of shape (n, k), float32
            Inner products ``user_vec · item_vec``.
        """
        if user_vecs.ndim != 2 or user_vecs.shape[1] != self.dim:
            raise ModelError(f"query vectors must have shape (n, {self.dim}), got {user_vecs.shape}")
        k = min(k, self.n_items)
        q = augment_queries(user_vecs)
        idx, dist = self._index.query(q, k=k, epsilon=self.epsilon)
        q_sq = np.einsum("ij,ij->i", user_vecs.astype(np.float64), user_vecs.astype(np.float64))
        scores = (q_sq[:, None] + self.max_norm ** 2 - dist.astype(np.float64) ** 2) / 2.0
        return idx.astype(np.int64), scores.astype(np.float32)

    def save(self, path: str | Path) -> Path:
        """Pickle the index atomically (pynndescent indexes pickle; see its test suite)."""
        return atomic_write_bytes(path, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


def load_index(path: str | Path) -> MipsIndex:
    """Load an index written by :meth:`MipsIndex.save`.

    Raises
    ------
    ModelError
        Missing file or not a MipsIndex.
    """
    return load_pickle(path, MipsIndex, ModelError, "index")
