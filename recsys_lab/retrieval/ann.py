"""Maximum inner product search (MIPS) over item vectors: an exact head plus a pynndescent graph.

pynndescent's ``"dot"`` metric L2-normalises the data (cosine neighbours, not the model's ranking; recall@10
0.63 against true MIPS on ML-100k, DESIGN.md). Three routes rank by the inner product itself:

- ``norm_range`` (default): the largest-norm items are scored exactly, the rest go into a pynndescent
  ``inner_product`` graph, and a Cauchy-Schwarz bound lets a query skip the graph when the head already
  settles it (see :class:`MipsIndex`). On LightFM vectors trained by recsys_lab on a generated log (50k
  users, 100k items, 1 M interactions; 2,000 real users' queries): recall@10 0.999 at 4.6x hnswlib ``ip``'s
  queries/s at the same recall on 1 thread, 3.6x on 2 (``recsys-lab bench --ann``).
- ``inner_product``: one pynndescent graph with its native metric (0.7+) over all items. It treats
  non-positive inner products as infinitely far. On the same vectors it stalls: recall@10 0.87-0.90 at
  k = 10 (epsilon 0.1-0.4), 0.95 only when over-fetching 100 candidates and re-scoring them (9.6k q/s).
- ``euclidean_augmented``: the MIPS-to-Euclidean reduction (Bachrach et al., "Speeding Up the Xbox
  Recommender System Using a Euclidean Transformation for Inner-Product Spaces", RecSys 2014): with
  ``M = max_i |x_i|`` each item becomes ``[x_i, sqrt(M^2 - |x_i|^2)]`` and each query ``[q, 0]``; then
  ``|q' - x'|^2 = |q|^2 + M^2 - 2 q·x``, so Euclidean nearest neighbours are exactly the largest inner
  products. Fine on ML-100k, poor on large catalogues with spread-out norms (0.43 at 100k items).

Candidates are re-scored exactly and sorted. Recall is always measured against exact top-k. This is the
only module that imports ``pynndescent`` and ``numba``; the numba compile (40-240 s per fresh process on
this shared 2-core machine) is a fixed cost reported separately as ``compile_seconds``, and not paid when no
graph is built (catalogues that fit in the exact head).
"""

from __future__ import annotations

import logging
import pickle
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from recsys_lab._fs import atomic_write_bytes, load_pickle
from recsys_lab.errors import ModelError, PerformanceWarning
from recsys_lab.retrieval.topk import top_k

__all__ = ["MipsIndex", "augment_items", "augment_queries", "load_index", "similar_items", "default_head_size",
           "METHODS", "AnnRecallWarning", "query_threads", "recall_overlap", "RecallResult", "measure_recall"]

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
    """Append a zero to each query vector: ndarray of shape (n, d + 1), float32.

    Parameters
    ----------
    user_vecs : ndarray of shape (n, d)
        Query vectors (e.g. folded user vectors ``[u, 1]``), any float dtype.

    Returns
    -------
    ndarray of shape (n, d + 1), float32
        The queries with a last column of zeros, to match the augmented item vectors of the MIPS-to-NN reduction.
    """
    q = np.asarray(user_vecs, dtype=np.float32)
    return np.hstack([q, np.zeros((q.shape[0], 1), np.float32)])


class AnnRecallWarning(PerformanceWarning):
    """The index's measured recall@k is below ``ann.min_recall``."""


METHODS = ("norm_range", "inner_product", "euclidean_augmented")
"""MIPS routes: exact head + pynndescent graph over the lower norm range (default), pynndescent's
``inner_product`` metric over all items, or the MIPS->Euclidean reduction."""

_WARM: set[tuple[str, int]] = set()
_QUERY_BLOCK = 4096  # queries scored against the exact head at once (4096 x head_size float32)


@contextmanager
def query_threads(n: int) -> Iterator[None]:
    """Run queries on ``n`` threads: numba's (pynndescent graph search) and the BLAS pool (exact head).

    Parameters
    ----------
    n : int
        Thread count; numba's is clamped to ``[1, NUMBA_NUM_THREADS]``.

    Yields
    ------
    None
        Inside the block both pools use ``n`` threads; numba's previous count is restored on exit.
    """
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    try:
        with threadpool_limits(n, user_api="blas"):
            yield
    finally:
        numba.set_num_threads(before)


def default_head_size(n_items: int) -> int:
    """Items searched exactly by :class:`MipsIndex` ``norm_range``: ``max(2048, min(n_items // 50, 4096))``
    (the 2 % largest norms, between 2,048 and 4,096), all items when that leaves fewer than 1,024 for the graph.

    Measured on LightFM vectors of generated logs (2,000 users' exact top-10): the 2,048 largest norms hold
    99.2 % of the answers at 100k items, the 4,096 largest 99.3 % at 1 M (20,000: 99.5 %, at 5x the head's
    cost per query: 406 queries/s on 1 thread at 1 M items).

    Parameters
    ----------
    n_items : int
        Catalogue size.

    Returns
    -------
    int
        Head size, at most ``n_items``.
    """
    head = max(2048, min(n_items // 50, 4096))
    return n_items if n_items - head < 1024 else head


def _warm_up(metric: str, dim: int, epsilon: float) -> float:
    """Build and query a tiny index once per process, metric and dimension, so numba compiles here, not in
    the timed build. Returns the seconds spent (0.0 when already warm)."""
    from pynndescent import NNDescent

    if (metric, dim) in _WARM:
        return 0.0
    t0 = time.perf_counter()
    data = np.abs(np.random.default_rng(0).normal(size=(64, dim))).astype(np.float32)
    idx = NNDescent(data, metric=metric, n_neighbors=8, random_state=0, low_memory=True)
    idx.prepare()
    idx.query(data[:2], k=2, epsilon=epsilon)
    _WARM.add((metric, dim))
    return time.perf_counter() - t0


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns of ``scores`` (rows sorted, best first; equal scores by id) and their ``ids``."""
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, ids = np.take_along_axis(scores, part, axis=1), np.take_along_axis(ids, part, axis=1)
    order = np.lexsort((ids, -scores), axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


class MipsIndex:
    """Maximum inner product search over item vectors; queries return the largest inner products.

    The default route, ``norm_range``, splits the catalogue by vector norm (the norm-range idea of Bachrach
    et al., RecSys 2014, and of norm-ranging LSH, Yan et al., NeurIPS 2018): the ``head_size`` items with the
    largest norms are scored exactly (one GEMM), the rest go into a pynndescent ``inner_product`` graph. By
    Cauchy-Schwarz no lower-range item scores above ``|q| * M_tail`` (``M_tail`` the largest norm in the
    lower range), so a query whose k-th head score reaches that bound is already exact and skips the graph.
    On LightFM vectors with folded biases the items that top users' lists are the popular, large-norm ones
    (on a generated 100k-item log the 2 % largest norms hold 99 % of all top-10 items), which is why this
    beats a single graph over everything; measured figures are in ``recsys-lab bench --ann`` and the
    README. Catalogues of fewer than ``head_size + 1024`` items are searched exactly and build no graph
    (no numba compilation).

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d), float32
        Item vectors (biases folded in, see :func:`recsys_lab.models.lightfm.embeddings`).
    method : str
        ``"norm_range"`` (default, above); ``"inner_product"``: one pynndescent graph with its native MIPS
        metric over all items (stalls near recall@10 0.76-0.90 on LightFM vectors at 100k items);
        ``"euclidean_augmented"``: the MIPS->Euclidean reduction over all items (0.43 at 100k items).
    n_neighbors : int
        Graph degree (default 30, pynndescent's default).
    epsilon : float
        Query-time search breadth of the graph (default 0.1).
    head_size : int or None
        ``norm_range`` only: items searched exactly, those of largest norm (default
        :func:`default_head_size`: 2 % of the items, between 2,048 and 4,096).
    seed : int
        ``random_state`` of the graph.
    n_jobs : int or None
        Threads for graph construction (None: numba's default).

    Attributes
    ----------
    build_seconds : float
        Wall time of graph construction and search preparation, numba compilation excluded.
    compile_seconds : float
        Time to build and query a tiny warm-up index first: numba's JIT cost in this process (0.0 when an
        earlier index of the same dimension already paid it, or when no graph is built).
    head_size : int
        Items searched exactly (``n_items`` for the other methods: 0).
    """

    def __init__(self, item_vecs: np.ndarray, *, method: str = "norm_range", n_neighbors: int = 30,
                 epsilon: float = 0.1, head_size: int | None = None, seed: int = 42,
                 n_jobs: int | None = None) -> None:
        if method not in METHODS:
            raise ModelError(f"unknown MIPS method {method!r}; expected one of {METHODS}")
        if item_vecs.ndim != 2 or len(item_vecs) < 2:
            raise ModelError(f"MIPS index needs a 2-D array of at least 2 item vectors, got shape {item_vecs.shape}")
        if not np.isfinite(item_vecs).all():
            raise ModelError("MIPS index: item vectors contain NaN or inf")
        if head_size is not None and head_size < 0:
            raise ModelError(f"head_size must be >= 0, got {head_size}")
        self.method, self.epsilon = method, epsilon
        self.n_items, self.dim = item_vecs.shape
        self._items = np.ascontiguousarray(item_vecs, dtype=np.float32)
        self.compile_seconds, self.build_seconds = 0.0, 0.0
        t0 = time.perf_counter()
        if method == "norm_range":
            norms = np.linalg.norm(self._items, axis=1)
            order = np.argsort(-norms, kind="stable")
            h = min(self.n_items, default_head_size(self.n_items) if head_size is None else head_size)
            if self.n_items - h < max(2 * n_neighbors, 64):
                h = self.n_items
            self.head_size = h
            self._head_ids = np.sort(order[:h])
            self._head_t = np.ascontiguousarray(self._items[self._head_ids].T)
            self._tail_ids = np.sort(order[h:])
            self._tail_norm = float(norms[self._tail_ids].max()) if len(self._tail_ids) else 0.0
            graph_data, metric = (self._items[self._tail_ids] if len(self._tail_ids) else None), "inner_product"
        else:
            self.head_size = 0
            metric = "inner_product" if method == "inner_product" else "euclidean"
            graph_data = self._items if method == "inner_product" else augment_items(self._items)[0]
        self._index = None
        if graph_data is not None:
            from pynndescent import NNDescent

            self.compile_seconds = _warm_up(metric, graph_data.shape[1], epsilon)
            t0 = time.perf_counter()
            self._index = NNDescent(graph_data, metric=metric, n_neighbors=min(n_neighbors, len(graph_data) - 1),
                                    random_state=seed, n_jobs=n_jobs, low_memory=True)
            self._index.prepare()
        self.build_seconds = time.perf_counter() - t0

    def query(self, user_vecs: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k items by inner product (exact for ``norm_range`` queries the bound settles).

        Parameters
        ----------
        user_vecs : ndarray of shape (n, d), float32
        k : int

        Returns
        -------
        items : ndarray of shape (n, k), int64
            Internal item indices, best first (equal scores by index).
        scores : ndarray of shape (n, k), float32
            Inner products ``user_vec · item_vec``.

        Raises
        ------
        ModelError
            Query vectors of the wrong shape.
        """
        if user_vecs.ndim != 2 or user_vecs.shape[1] != self.dim:
            raise ModelError(f"query vectors must have shape (n, {self.dim}), got {user_vecs.shape}")
        k = min(k, self.n_items)
        q = np.ascontiguousarray(user_vecs, dtype=np.float32)
        if self.method != "norm_range":
            idx, _ = self._index.query(q if self.method == "inner_product" else augment_queries(q), k=k,
                                       epsilon=self.epsilon)
            idx = idx.astype(np.int64)
            # exact scores of the candidates, best first (the graph's order follows its proxy distance)
            return _top(np.einsum("nd,nkd->nk", q, self._items[idx]), idx, k)
        out_i = np.empty((len(q), k), dtype=np.int64)
        out_s = np.empty((len(q), k), dtype=np.float32)
        for lo in range(0, len(q), _QUERY_BLOCK):
            out_i[lo:lo + _QUERY_BLOCK], out_s[lo:lo + _QUERY_BLOCK] = self._query_norm_range(q[lo:lo + _QUERY_BLOCK], k)
        return out_i, out_s

    def _query_norm_range(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kh = min(k, self.head_size)
        head_s = q @ self._head_t
        ids, scores = _top(head_s, np.broadcast_to(self._head_ids, head_s.shape), kh)
        if self._index is None:
            return ids, scores
        # Cauchy-Schwarz: no lower-range item beats |q| * M_tail; queries whose k-th head score reaches it are done
        need = np.ones(len(q), bool) if kh < k else scores[:, -1] < np.linalg.norm(q, axis=1) * self._tail_norm
        ids = np.hstack([ids, np.zeros((len(q), k - kh), np.int64)])
        scores = np.hstack([scores, np.full((len(q), k - kh), -np.inf, np.float32)])
        act = np.flatnonzero(need)
        if len(act):
            kt = min(k, len(self._tail_ids))
            t_idx, _ = self._index.query(q[act], k=kt, epsilon=self.epsilon)
            t_idx = t_idx.astype(np.int64)
            t_ids = self._tail_ids[np.maximum(t_idx, 0)]
            t_s = np.einsum("nd,nkd->nk", q[act], self._items[t_ids])
            t_s[t_idx < 0] = -np.inf  # the graph found fewer than kt items (pynndescent pads with -1)
            ids[act], scores[act] = _top(np.hstack([scores[act, :kh], t_s]), np.hstack([ids[act, :kh], t_ids]), k)
        return ids, scores

    def save(self, path: str | Path) -> Path:
        """Pickle the index atomically (pynndescent indexes pickle; see its test suite).

        Parameters
        ----------
        path : str or Path
            Destination file (``artifacts/index.pkl`` in a run folder).

        Returns
        -------
        Path
            The written file.
        """
        return atomic_write_bytes(path, pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL))


def similar_items(index: MipsIndex, items: np.ndarray, k: int = 10, *, bias_column: int | None = -1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Item-to-item neighbours through the MIPS index: for each item, the ``k`` other items with the largest
    inner product against the item's vector used as a query.

    Similarity returned: with ``bias_column`` (default -1, the layout of
    :func:`recsys_lab.models.lightfm.embeddings`: item ``[e_j, b_j]``), the query for item ``i`` is ``[e_i, 1]``, so
    ``sim(i, j) = e_i · e_j + b_j``: the score LightFM gives ``j`` for a user whose representation equals
    ``i``'s embedding ("users who like i would get j next"). It is asymmetric and popularity-aware (``b_j``),
    not cosine similarity. With ``bias_column=None`` the raw vectors are used: ``sim(i, j) = x_i · x_j``.

    Parameters
    ----------
    index : MipsIndex
    items : ndarray of shape (n,), int64
        Internal item indices.
    k : int
        Neighbours per item (the item itself is never returned; capped at ``n_items - 1``).
    bias_column : int or None
        Column of the item bias in the index's vectors (replaced by 1 in the query), or None.

    Returns
    -------
    neighbours : ndarray of shape (n, k), int64
        Internal item indices, most similar first.
    scores : ndarray of shape (n, k), float32
        ``sim(i, j)`` as above.

    Raises
    ------
    ModelError
        Item indices outside ``[0, n_items)``.
    """
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    if len(items) and (items.min() < 0 or items.max() >= index.n_items):
        bad = items[(items < 0) | (items >= index.n_items)][0]
        raise ModelError(f"item index {bad} out of range [0, {index.n_items})")
    k = min(k, index.n_items - 1)
    q = index._items[items].copy()
    if bias_column is not None:
        q[:, bias_column] = 1.0
    got, scores = index.query(q, k + 1)
    keep = got != items[:, None]
    # drop the item itself (or the last one when the item is not among its own k + 1 best)
    drop_last = keep.all(axis=1)
    keep[drop_last, -1] = False
    n = len(items)
    return got[keep].reshape(n, k), scores[keep].reshape(n, k)


def load_index(path: str | Path) -> MipsIndex:
    """Load an index written by :meth:`MipsIndex.save`.

    Parameters
    ----------
    path : str or Path
        A file written by :meth:`MipsIndex.save`.

    Returns
    -------
    MipsIndex

    Raises
    ------
    ModelError
        Missing file or not a MipsIndex.
    """
    return load_pickle(path, MipsIndex, ModelError, "index")


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
                   epsilon: float = 0.1, head_size: int | None = None, seed: int = 0, n_jobs: int = 1
                   ) -> RecallResult:
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
        ``exact`` or one of :data:`METHODS`.
    n_neighbors, epsilon, head_size, seed, n_jobs
        Passed to :class:`MipsIndex`.

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
                      seed=seed, n_jobs=n_jobs)
    t0 = time.perf_counter()
    approx, _ = index.query(queries, k)
    t_ann = time.perf_counter() - t0
    return RecallResult(index=index, method=method, recall=recall_overlap(approx, exact), n_queries=len(queries),
                        exact_seconds=t_exact, ann_seconds=t_ann, build_seconds=index.build_seconds,
                        compile_seconds=index.compile_seconds)
