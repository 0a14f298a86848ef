"""Maximum inner product search (MIPS) over item vectors, behind one door: :class:`MipsIndex`.

Routes (``method``), all re-scoring candidates exactly: ``hnsw`` (default: an exact head plus an hnswlib ``ip``
graph, both sized at build time on held-out queries, see :class:`MipsIndex`; recall@10 >= 0.95 on each of the five
sets of ``recsys-lab bench --ann``); ``exact`` (:func:`recsys_lab.retrieval.topk.top_k`, no build); the pynndescent
routes ``norm_range``, ``inner_product``, ``euclidean_augmented`` kept for comparison (:mod:`.graphs`;
``norm_range``'s fixed head of the largest norms never reached 0.95 on held-out LightFM vectors, DESIGN.md).

Measured (2 loaded cores, 100k items, 1 thread, recall@10 ~0.96): faiss IVF-Flat inner product answered 0.2-0.4x
hnswlib's queries/s where answers are spread (1.7k vs 9.5k, 1.9k vs 5.1k), so the graph is hnswlib's. Where they are
concentrated (99.4 % of a BPR model's answers among 256 items) a small exact head answers alone, at GEMM speed.

An index reloads from arrays (:meth:`MipsIndex.to_arrays`, :meth:`MipsIndex.from_arrays`; no pickle; the hnswlib
graph checked by :mod:`.hnsw_arrays`). The only module importing ``hnswlib`` (besides the benchmark comparing with it).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from recsys_lab._fs import atomic_write_bytes
from recsys_lab.errors import ModelError, PerformanceWarning
from recsys_lab.retrieval import graphs, hnsw_arrays, topk

__all__ = ["MipsIndex", "METHODS", "AnnRecallWarning", "query_threads", "load_index"]

log = logging.getLogger(__name__)


class AnnRecallWarning(PerformanceWarning):
    """The index's measured recall@k is below ``ann.min_recall``."""


METHODS = ("hnsw", "exact", "norm_range", "inner_product", "euclidean_augmented")
"""MIPS routes: exact head + hnswlib graph, both calibrated (default); exact blocked search; the pynndescent routes."""

_HEADS = (0, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)  # exact-head sizes tried (at most an eighth of the items)
_HEAD_ONLY_MAX = 4096  # a head this small that reaches the target alone beats any graph: none is built
_EFS = (0, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1280,
        1600, 2000)  # hnswlib ef tried, ascending (0: the head alone)
_QUERY_BLOCK = 4096  # queries scored against the exact head at once
_THREADS: list[int] = []  # query threads set by query_threads (hnswlib takes them per call)


@contextmanager
def query_threads(n: int) -> Iterator[None]:
    """Run queries on ``n`` threads: hnswlib's, numba's (pynndescent, when loaded), the BLAS pool and exact top-k's.

    Parameters
    ----------
    n : int
        Thread count; numba's is clamped to ``[1, NUMBA_NUM_THREADS]``.

    Yields
    ------
    None
        Inside the block the pools use ``n`` threads; the previous counts are restored on exit.
    """
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    numba = sys.modules.get("numba")  # only a pool already loaded
    before = (numba.get_num_threads() if numba else None, topk._THREADS)
    if numba:
        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
    topk._THREADS = n
    _THREADS.append(n)
    try:
        with threadpool_limits(n, user_api="blas"):
            yield
    finally:
        _THREADS.pop()
        if numba:
            numba.set_num_threads(before[0])
        topk._THREADS = before[1]


def _overlap(got: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` found in the same row of ``got`` (recall@k against exact top-k)."""
    return float((got[:, :, None] == truth[:, None, :]).any(axis=1).mean()) if truth.size else 1.0


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


_PARAMS = ("method", "n_neighbors", "epsilon", "head_size", "seed", "ef", "target_recall", "k", "hnsw_m",
           "ef_construction")


class MipsIndex:
    """Maximum inner product search over item vectors; queries return the largest inner products.

    The default route, ``hnsw``: the ``head_size`` items most often in users' exact top-k (then the largest norms)
    are scored exactly (one GEMM); every item is in an hnswlib ``ip`` graph searched with breadth ``ef`` (head items it
    returns are dropped: they are already scored). By Cauchy-Schwarz no item outside the head scores above
    ``|q| * M_tail``, so a query whose k-th head score reaches that bound skips the graph. Head and ``ef`` are chosen
    at build time by measurement on a seeded sample of ``2 * calibration_queries`` rows of ``queries`` (pass real
    users' vectors, ideally not those the recall is later measured on; without them the item vectors stand in): one
    half ranks the items by how often they are answers, the other half measures. For each head size the smallest
    ``ef`` whose recall@k reaches ``target_recall`` is found; of these the fastest on the sample (timings
    interleaved) is kept, a smaller head unless the fastest beats it by over 10 %. A head of at most 4,096 items that
    reaches the target alone is kept without building a graph. Every pair tried is in :attr:`calibration`.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d), float32
        Item vectors (biases folded in, see :func:`recsys_lab.models.lightfm.embeddings`).
    method : str
        One of :data:`METHODS` (default ``"hnsw"``; see the module docstring).
    n_neighbors : int
        Graph degree of the pynndescent routes (default 30).
    epsilon : float
        Query-time search breadth of the pynndescent routes (default 0.1).
    head_size : int or None
        ``hnsw``: a fixed head size instead of the calibrated one; ``norm_range``: items searched exactly, those of
        largest norm (default :func:`recsys_lab.retrieval.graphs.default_head_size`).
    seed : int
        Seed of the calibration sample and of the graphs.
    n_jobs : int or None
        Build threads (None: the libraries' defaults).
    queries : ndarray of shape (n, d), optional
        ``hnsw``: query vectors the calibration sample is drawn from (default: the item vectors).
    target_recall : float
        ``hnsw``: recall@k the calibration must reach (default 0.96, a margin over the 0.95 floor).
    k : int
        ``hnsw``: list length the calibration measures recall at (default 10).
    calibration_queries : int
        ``hnsw``: queries in each half of the calibration sample (default 1,000).
    hnsw_m, ef_construction : int
        ``hnsw``: hnswlib's ``M`` and ``ef_construction`` (default 32 and 200: on the grown ML-100k set, where the
        answers are spread and the graph does the work, ``M`` 32 reached recall@10 0.963 at 1.61x the queries/s of
        hnswlib ``M`` 16 at matched recall, ``M`` 16 1.18x; the build took 24 s instead of 20 s for 100k items).

    Attributes
    ----------
    build_seconds : float
        Wall time of the build (graph and calibration), numba compilation excluded.
    compile_seconds : float
        numba's JIT cost paid in this process by a pynndescent route (0.0 otherwise).
    head_size : int
        Items searched exactly (``n_items`` for ``exact``; 0 for the single-graph routes).
    ef : int
        ``hnsw``: the graph's search breadth (0: the head alone answers, no graph).
    calibration : list of (int, int, float, float)
        ``hnsw``: ``(head_size, ef, recall@k, queries/s)`` of every head size tried (queries/s 0.0 below the target).

    Raises
    ------
    ModelError
        Unknown method, item vectors not 2-D, fewer than 2, or not finite, a negative head size, calibration queries
        of the wrong shape, or a target recall outside (0, 1].
    """

    def __init__(self, item_vecs: np.ndarray, *, method: str = "hnsw", n_neighbors: int = 30, epsilon: float = 0.1,
                 head_size: int | None = None, seed: int = 42, n_jobs: int | None = None,
                 queries: np.ndarray | None = None, target_recall: float = 0.96, k: int = 10,
                 calibration_queries: int = 1000, hnsw_m: int = 32, ef_construction: int = 200) -> None:
        if head_size is not None and head_size < 0:
            raise ModelError(f"head_size must be >= 0, got {head_size}")
        if not 0 < target_recall <= 1:
            raise ModelError(f"target_recall must be in (0, 1], got {target_recall}")
        self._setup(item_vecs, {"method": method, "n_neighbors": n_neighbors, "epsilon": epsilon,
                                "head_size": head_size, "seed": seed, "ef": 0, "target_recall": target_recall,
                                "k": k, "hnsw_m": hnsw_m, "ef_construction": ef_construction})
        t0 = time.perf_counter()
        if method == "hnsw":
            self._build_hnsw(queries, calibration_queries, n_jobs)
        elif method == "exact":
            self.head_size = self.n_items
        else:
            self._graph = graphs.GraphRoute(self._items, method, n_neighbors=n_neighbors, epsilon=epsilon,
                                            head_size=head_size, seed=seed, n_jobs=n_jobs)
            self.head_size = self._graph.head_size
            self.compile_seconds, self.build_seconds = self._graph.compile_seconds, self._graph.build_seconds
            return
        self.build_seconds = time.perf_counter() - t0

    def _setup(self, item_vecs: np.ndarray, params: dict) -> None:
        if params["method"] not in METHODS:
            raise ModelError(f"unknown MIPS method {params['method']!r}; expected one of {METHODS}")
        if item_vecs.ndim != 2 or len(item_vecs) < 2:
            raise ModelError(f"MIPS index needs a 2-D array of at least 2 item vectors, got shape {item_vecs.shape}")
        if not np.isfinite(item_vecs).all():
            raise ModelError("MIPS index: item vectors contain NaN or inf")
        self.method, self.epsilon, self.n_neighbors, self.seed = (params["method"], float(params["epsilon"]),
                                                                 int(params["n_neighbors"]), int(params["seed"]))
        self.target_recall, self.calibration_k = float(params["target_recall"]), int(params["k"])
        self.hnsw_m, self.ef_construction = int(params["hnsw_m"]), int(params["ef_construction"])
        self.n_items, self.dim = item_vecs.shape
        self._items = np.ascontiguousarray(item_vecs, dtype=np.float32)
        self._requested_head = params["head_size"]
        self.ef = int(params["ef"])
        self.calibration: list[tuple[int, int, float, float]] = []
        self.compile_seconds, self.build_seconds, self.head_size = 0.0, 0.0, 0
        self._graph = self._hnsw = None
        self._set_head(np.zeros(0, np.int64))

    def _build_hnsw(self, queries: np.ndarray | None, n_calib: int, n_jobs: int | None) -> None:
        rng = np.random.default_rng([self.seed, 1])
        pool = (self._items[np.linalg.norm(self._items, axis=1) > 0] if queries is None  # zero rows: all ties
                else np.asarray(queries, dtype=np.float32))
        if pool.ndim != 2 or pool.shape[1] != self.dim or not len(pool) or not np.isfinite(pool).all():
            raise ModelError(f"calibration queries must be finite, of shape (n >= 1, {self.dim}), got {pool.shape}")
        sample = pool[rng.permutation(len(pool))[:min(2 * n_calib, len(pool))]]
        k = min(self.calibration_k, self.n_items)
        # one half ranks the items by how often they are answers (the head's order), the other half measures recall
        half = len(sample) // 2 if len(sample) > 1 else 1
        ranked = np.bincount(topk.top_k(sample[:half], self._items, k)[0].ravel(), minlength=self.n_items)
        q = np.ascontiguousarray(sample[half:] if len(sample) > 1 else sample)
        exact, _ = topk.top_k(q, self._items, k)
        order = np.lexsort((-np.linalg.norm(self._items, axis=1), -ranked))  # most frequent answers, then largest norms
        heads = ([min(self._requested_head, self.n_items)] if self._requested_head is not None
                 else [h for h in _HEADS if h <= max(self.n_items // 8, 0)])

        def measure(head: int, ef: int) -> float:
            self._set_head(order[:head])
            self.ef = ef
            return _overlap(self.query(q, k)[0], exact)

        for head in sorted(heads):  # the head alone: no graph needed
            recall = measure(head, 0)
            if recall >= self.target_recall and 0 < head <= _HEAD_ONLY_MAX:
                self.calibration.append((head, 0, recall, len(q) / min(_timed(lambda: self.query(q, k))
                                                                        for _ in range(2))))
                log.info("hnsw: the exact head of %d items alone reaches recall@%d %.4f: no graph", head, k, recall)
                return
        self._hnsw = self._new_graph(n_jobs)
        tried, start = [], 0
        for head in sorted(heads, reverse=True):  # larger heads need a smaller ef: the search goes on upwards
            for j in range(start, len(_EFS)):
                recall = measure(head, _EFS[j])
                if recall >= self.target_recall:
                    break
            start = j
            tried.append((head, self.ef, recall))
        ok = [t for t in tried if t[2] >= self.target_recall] or [(0, _EFS[-1], tried[-1][2])]
        seconds = [float("inf")] * len(ok)
        for _ in range(3):  # the settings' timings interleaved, so that load on a shared machine hits them alike
            for j, (head, ef, _) in enumerate(ok):
                self._set_head(order[:head])
                self.ef = ef
                seconds[j] = min(seconds[j], _timed(lambda: self.query(q, k)))
        # the fastest; a smaller head (fewer moving parts) unless the fastest beats it by more than 10 %
        best = next(j for j in sorted(range(len(ok)), key=lambda j: ok[j][0]) if seconds[j] <= 1.1 * min(seconds))
        self.calibration = [(h, e, r, len(q) / seconds[ok.index((h, e, r))] if (h, e, r) in ok else 0.0)
                            for h, e, r in tried]
        self._set_head(order[:ok[best][0]])
        self.ef = ok[best][1]
        log.info("hnsw: head %d, ef %d (calibration on %d queries: %s)", self.head_size, self.ef, len(q),
                 self.calibration)

    def _new_graph(self, n_jobs: int | None):  # noqa: ANN202 - hnswlib.Index
        import hnswlib

        graph = hnswlib.Index(space="ip", dim=self.dim)
        graph.init_index(max_elements=self.n_items, M=self.hnsw_m, ef_construction=self.ef_construction,
                         random_seed=self.seed)
        graph.add_items(self._items, np.arange(self.n_items), num_threads=n_jobs or -1)
        return graph

    def _set_head(self, ids: np.ndarray) -> None:
        """Items ``ids`` are searched exactly; the rest through the graph (and the bound)."""
        self._head_ids = np.sort(np.asarray(ids, dtype=np.int64))
        self.head_size = len(self._head_ids)
        self._head_t = np.ascontiguousarray(self._items[self._head_ids].T)
        self._is_head = np.zeros(self.n_items, bool)
        self._is_head[self._head_ids] = True
        rest = self._items[~self._is_head]
        self._tail_norm = float(np.sqrt(np.einsum("ij,ij->i", rest, rest).max())) if len(rest) else 0.0

    def _query_hnsw(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kh = min(k, self.head_size)
        head_s = q @ self._head_t
        ids, scores = graphs.rank_candidates(head_s, np.broadcast_to(self._head_ids, head_s.shape), kh)
        # Cauchy-Schwarz: no item outside the head beats |q| * M_tail; queries whose k-th head score reaches it are done
        need = np.ones(len(q), bool) if kh < k else scores[:, -1] < np.linalg.norm(q, axis=1) * self._tail_norm
        out_i = np.zeros((len(q), k), np.int64)
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i[:, :kh], out_s[:, :kh] = ids, scores
        act = np.flatnonzero(need)
        if not len(act) or self.ef == 0 or self._hnsw is None:  # ef 0: the head alone reached the target recall
            return out_i, out_s
        self._hnsw.set_ef(max(self.ef, k))
        t_ids = self._hnsw.knn_query(q[act], k=k, num_threads=_THREADS[-1] if _THREADS else -1)[0].astype(np.int64)
        t_s = np.einsum("nd,nkd->nk", q[act], self._items[t_ids])
        t_s[self._is_head[t_ids]] = -np.inf  # head items are already scored exactly
        out_i[act], out_s[act] = graphs.rank_candidates(np.hstack([scores[act], t_s]), np.hstack([ids[act], t_ids]), k)
        return out_i, out_s

    def query(self, user_vecs: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k items by inner product (exact for ``exact``; ``hnsw`` queries the bound settles and
        ``norm_range`` queries the bound settles are exact too).

        Parameters
        ----------
        user_vecs : ndarray of shape (n, d), float32
        k : int

        Returns
        -------
        items : ndarray of shape (n, k), int64
            Internal item indices, best first (equal scores by index).
        scores : ndarray of shape (n, k), float32
            Inner products ``user_vec · item_vec`` (-inf where the head alone held fewer than k items).

        Raises
        ------
        ModelError
            Query vectors of the wrong shape.
        """
        if user_vecs.ndim != 2 or user_vecs.shape[1] != self.dim:
            raise ModelError(f"query vectors must have shape (n, {self.dim}), got {user_vecs.shape}")
        k = min(k, self.n_items)
        q = np.ascontiguousarray(user_vecs, dtype=np.float32)
        if self.method == "exact":
            return topk.top_k(q, self._items, k)
        if self.method != "hnsw":
            return self._graph.query(q, k)
        out_i = np.empty((len(q), k), dtype=np.int64)
        out_s = np.empty((len(q), k), dtype=np.float32)
        for lo in range(0, len(q), _QUERY_BLOCK):
            out_i[lo:lo + _QUERY_BLOCK], out_s[lo:lo + _QUERY_BLOCK] = self._query_hnsw(q[lo:lo + _QUERY_BLOCK], k)
        return out_i, out_s

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The index as plain arrays (no pickle, no object arrays): ``items`` (float32), ``params`` (a JSON string as
        a 0-d unicode array: method, parameters, chosen head size and ``ef``, ``calibration``) and, for ``hnsw``,
        ``head_ids`` and the graph (``hnsw_state``: its scalars as JSON, ``hnsw_<name>``: its arrays). pynndescent
        routes are rebuilt from ``items`` by :meth:`from_arrays`.

        Returns
        -------
        dict of str to ndarray
            Ready for ``numpy.savez`` and ``numpy.load(..., allow_pickle=False)``.
        """
        params = {"method": self.method, "n_neighbors": self.n_neighbors, "epsilon": self.epsilon,
                  "head_size": self.head_size if self.method in ("norm_range", "hnsw") else self._requested_head,
                  "seed": self.seed, "ef": self.ef, "target_recall": self.target_recall, "k": self.calibration_k,
                  "hnsw_m": self.hnsw_m, "ef_construction": self.ef_construction,
                  "calibration": [list(c) for c in self.calibration], "build_seconds": self.build_seconds}
        out = {"items": self._items, "params": np.array(json.dumps(params))}
        if self.method == "hnsw":
            out["head_ids"] = self._head_ids
            if self._hnsw is not None:
                out.update(hnsw_arrays.to_arrays(self._hnsw.__getstate__()[0]))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "MipsIndex":
        """Rebuild an index from :meth:`to_arrays` (a mapping such as ``numpy.load``'s ``NpzFile``).

        ``hnsw`` and ``exact`` come back identical (same head, same graph, same ``ef``, same answers): the graph's
        sizes, neighbour ids and labels are checked and its vectors taken from ``items``, so malformed arrays raise
        instead of reaching hnswlib. pynndescent routes are rebuilt from the items with the recorded parameters.

        Parameters
        ----------
        arrays : mapping of str to ndarray
            ``items``, ``params`` and, for ``hnsw``, ``head_ids`` and the graph's arrays.

        Returns
        -------
        MipsIndex

        Raises
        ------
        ModelError
            A missing or malformed array, unknown parameters, or a graph that does not match the items.
        """
        try:
            items = np.asarray(arrays["items"])
            params = json.loads(str(np.asarray(arrays["params"])))
            known = {name: params[name] for name in _PARAMS}
            calibration = [(int(h), int(e), float(r), float(v)) for h, e, r, v in params.get("calibration", [])]
            head = np.asarray(arrays["head_ids"] if known["method"] == "hnsw" else np.zeros(0), dtype=np.int64)
            state = hnsw_arrays.from_arrays(arrays) if known["method"] == "hnsw" else None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"index arrays: missing or malformed arrays ({exc})") from exc
        if items.dtype.kind != "f":
            raise ModelError(f"index arrays: items must be floating point, got {items.dtype}")
        if known["method"] in graphs.GRAPH_METHODS:
            return cls(items, method=known["method"], n_neighbors=known["n_neighbors"], epsilon=known["epsilon"],
                       head_size=known["head_size"], seed=known["seed"])
        obj = cls.__new__(cls)
        obj._setup(items, known)
        obj.calibration, obj.build_seconds = calibration, float(params.get("build_seconds", 0.0))
        if obj.method == "exact":
            obj.head_size = obj.n_items
            return obj
        if len(head) and (head.min() < 0 or head.max() >= obj.n_items or len(np.unique(head)) != len(head)):
            raise ModelError(f"index arrays: head_ids must be distinct item indices in [0, {obj.n_items})")
        obj._set_head(head)
        if state is not None:
            import hnswlib

            try:
                checked = hnsw_arrays.checked_state(state, obj._items)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelError(f"index arrays: malformed hnsw graph ({exc})") from exc
            obj._hnsw = hnswlib.Index.__new__(hnswlib.Index)
            obj._hnsw.__setstate__((checked,))
        elif obj.ef:
            raise ModelError("index arrays: ef > 0 but no hnsw graph")
        return obj

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_arrays` as an ``.npz`` atomically (no pickle; read back by :func:`load_index`).

        Parameters
        ----------
        path : str or Path
            Destination file (``artifacts/index.npz`` in a run folder).

        Returns
        -------
        Path
        """
        buf = io.BytesIO()
        np.savez(buf, **self.to_arrays())
        return atomic_write_bytes(path, buf.getvalue())


def load_index(path: str | Path) -> MipsIndex:
    """Load an index written by :meth:`MipsIndex.save` (arrays only, ``allow_pickle=False``: nothing runs).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MipsIndex
        Raises ModelError for a missing, truncated or malformed file (named).
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            return MipsIndex.from_arrays({name: npz[name] for name in npz.files})
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelError(f"{path}: not a readable index ({type(exc).__name__}: {exc})") from exc
