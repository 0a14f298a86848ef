"""pynndescent graph routes of :class:`recsys_lab.retrieval.ann.MipsIndex`, kept for comparison.

pynndescent's ``"dot"`` metric L2-normalises the data (cosine neighbours, not the model's ranking; recall@10 0.63
against true MIPS on ML-100k, DESIGN.md). The three routes here rank by the inner product itself:

- ``norm_range``: the largest-norm items are scored exactly, the rest go into a pynndescent ``inner_product``
  graph, and a Cauchy-Schwarz bound lets a query skip the graph when the head already settles it (the norm-range
  idea of Bachrach et al., RecSys 2014, and of norm-ranging LSH, Yan et al., NeurIPS 2018). It relies on the
  largest norms holding the answers: 99.2 % of top-10 items in the 2 % largest norms on the project's generator,
  39.2 % on held-out LightFM vectors, where it never reached recall@10 0.95.
- ``inner_product``: one graph with pynndescent's native metric over all items (stalls at recall@10 0.87-0.90).
- ``euclidean_augmented``: the MIPS-to-Euclidean reduction (Bachrach et al., "Speeding Up the Xbox Recommender
  System Using a Euclidean Transformation for Inner-Product Spaces", RecSys 2014): with ``M = max_i |x_i|`` each
  item becomes ``[x_i, sqrt(M^2 - |x_i|^2)]`` and each query ``[q, 0]``; then ``|q' - x'|^2 = |q|^2 + M^2 - 2 q·x``
  (0.43 at 100k items).

This is the only module that imports ``pynndescent`` (and so numba, whose compile of 40-240 s per fresh process on
this machine is reported apart as ``compile_seconds``).
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["GraphRoute", "GRAPH_METHODS", "augment_items", "augment_queries", "default_head_size", "rank_candidates"]

GRAPH_METHODS = ("norm_range", "inner_product", "euclidean_augmented")
"""The pynndescent routes."""

_WARM: set[tuple[str, int]] = set()
_QUERY_BLOCK = 4096  # queries scored against the exact head at once (4096 x head_size float32)


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


def rank_candidates(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k columns of ``scores`` and their ``ids``, rows sorted best first (equal scores by id).

    Parameters
    ----------
    scores : ndarray of shape (n, m)
        Exact inner products of the candidates.
    ids : ndarray of shape (n, m), int64
        The candidates' item indices.
    k : int
        Columns kept (at most m).

    Returns
    -------
    ids : ndarray of shape (n, k), int64
    scores : ndarray of shape (n, k)
    """
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        scores, ids = np.take_along_axis(scores, part, axis=1), np.take_along_axis(ids, part, axis=1)
    order = np.lexsort((ids, -scores), axis=1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)



class GraphRoute:
    """Build and query one pynndescent route over ``items`` (see the module docstring).

    Parameters
    ----------
    items : ndarray of shape (n_items, d), float32
        Item vectors, finite.
    method : str
        One of :data:`GRAPH_METHODS`.
    n_neighbors : int
        Graph degree.
    epsilon : float
        Query-time search breadth.
    head_size : int or None
        ``norm_range``: items searched exactly (default :func:`default_head_size`); all items when fewer than
        ``max(2 * n_neighbors, 64)`` would be left for the graph.
    seed : int
        ``random_state`` of the graph.
    n_jobs : int or None
        Build threads (None: numba's default).

    Attributes
    ----------
    head_size : int
        Items searched exactly (0 for the single-graph routes).
    head_ids, tail_ids : ndarray of int64
        ``norm_range``: the exact head and the graph's items (sorted).
    graph : pynndescent.NNDescent or None
        None when the head covers the catalogue.
    compile_seconds, build_seconds : float
        numba's warm-up in this process (0.0 when already paid or no graph) and the graph's build time.
    """

    def __init__(self, items: np.ndarray, method: str, *, n_neighbors: int, epsilon: float,
                 head_size: int | None, seed: int, n_jobs: int | None) -> None:
        self.method, self.epsilon, self._items = method, epsilon, items
        self.head_size, self.compile_seconds, self.graph = 0, 0.0, None
        n_items = len(items)
        t0 = time.perf_counter()
        if method == "norm_range":
            norms = np.linalg.norm(items, axis=1)
            order = np.argsort(-norms, kind="stable")
            h = min(n_items, default_head_size(n_items) if head_size is None else head_size)
            if n_items - h < max(2 * n_neighbors, 64):
                h = n_items
            self.head_size = h
            self.head_ids = np.sort(order[:h])
            self._head_t = np.ascontiguousarray(items[self.head_ids].T)
            self.tail_ids = np.sort(order[h:])
            self._tail_norm = float(norms[self.tail_ids].max()) if len(self.tail_ids) else 0.0
            data, metric = (items[self.tail_ids] if len(self.tail_ids) else None), "inner_product"
        else:
            metric = "inner_product" if method == "inner_product" else "euclidean"
            data = items if method == "inner_product" else augment_items(items)[0]
        if data is not None:
            from pynndescent import NNDescent

            self.compile_seconds = _warm_up(metric, data.shape[1], epsilon)
            t0 = time.perf_counter()
            self.graph = NNDescent(data, metric=metric, n_neighbors=min(n_neighbors, len(data) - 1),
                                   random_state=seed, n_jobs=n_jobs, low_memory=True)
            self.graph.prepare()
        self.build_seconds = time.perf_counter() - t0

    def query(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items of each query, re-scored exactly, best first.

        Parameters
        ----------
        q : ndarray of shape (n, d), float32, C-contiguous
        k : int
            At most the number of items.

        Returns
        -------
        items : ndarray of shape (n, k), int64
        scores : ndarray of shape (n, k), float32
        """
        if self.method != "norm_range":
            idx, _ = self.graph.query(q if self.method == "inner_product" else augment_queries(q), k=k,
                                      epsilon=self.epsilon)
            idx = idx.astype(np.int64)
            # exact scores of the candidates, best first (the graph's order follows its proxy distance)
            return rank_candidates(np.einsum("nd,nkd->nk", q, self._items[idx]), idx, k)
        out_i = np.empty((len(q), k), dtype=np.int64)
        out_s = np.empty((len(q), k), dtype=np.float32)
        for lo in range(0, len(q), _QUERY_BLOCK):
            out_i[lo:lo + _QUERY_BLOCK], out_s[lo:lo + _QUERY_BLOCK] = self._norm_range(q[lo:lo + _QUERY_BLOCK], k)
        return out_i, out_s

    def _norm_range(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kh = min(k, self.head_size)
        head_s = q @ self._head_t
        ids, scores = rank_candidates(head_s, np.broadcast_to(self.head_ids, head_s.shape), kh)
        if self.graph is None:
            return ids, scores
        # Cauchy-Schwarz: no lower-range item beats |q| * M_tail; queries whose k-th head score reaches it are done
        need = np.ones(len(q), bool) if kh < k else scores[:, -1] < np.linalg.norm(q, axis=1) * self._tail_norm
        ids = np.hstack([ids, np.zeros((len(q), k - kh), np.int64)])
        scores = np.hstack([scores, np.full((len(q), k - kh), -np.inf, np.float32)])
        act = np.flatnonzero(need)
        if len(act):
            kt = min(k, len(self.tail_ids))
            t_idx, _ = self.graph.query(q[act], k=kt, epsilon=self.epsilon)
            t_idx = t_idx.astype(np.int64)
            t_ids = self.tail_ids[np.maximum(t_idx, 0)]
            t_s = np.einsum("nd,nkd->nk", q[act], self._items[t_ids])
            t_s[t_idx < 0] = -np.inf  # the graph found fewer than kt items (pynndescent pads with -1)
            ids[act], scores[act] = rank_candidates(np.hstack([scores[act, :kh], t_s]),
                                                    np.hstack([ids[act, :kh], t_ids]), k)
        return ids, scores

