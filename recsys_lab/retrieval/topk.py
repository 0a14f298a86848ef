"""Exact top-k by dot product (maximum inner product search by brute force), at the speed of the GEMM.

Shared by evaluation (every model's lists), fold-in's cold-start measurement and candidate generation's exact
path, so that one selection routine is tuned and tested once (``recsys-lab bench`` reports its ratio to the bare
float32 GEMM).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lab.errors import ConfigError

__all__ = ["top_k"]

_BATCH_CELLS = 1 << 24  # scores computed per batch: 16 M float32 = 64 MiB


def _batches(n_rows: int, n_items: int):
    step = max(1, _BATCH_CELLS // max(n_items, 1))
    for lo in range(0, n_rows, step):
        yield lo, min(lo + step, n_rows)


def _masked_scores(user_vecs: np.ndarray, item_vecs: np.ndarray, users: np.ndarray,
                   exclude: sp.csr_matrix | None) -> np.ndarray:
    scores = user_vecs[users] @ item_vecs.T
    if exclude is not None:
        sub = exclude[users]
        rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
        scores[rows, sub.indices] = -np.inf
    return scores


def _full_select(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row of ``s`` by partial sort of the whole row (any k)."""
    n_rows, n = s.shape
    # the k largest by partitioning at n - k: argpartition(-s, k - 1) degenerates on rows of ties with an -inf
    # (14 ms vs 0.5 ms per 100k-item row: a zero query vector with its own item excluded)
    part = np.argpartition(s, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (n_rows, 1))
    return part, np.take_along_axis(s, part, axis=1)


def _threshold_select(s: np.ndarray, k: int, groups: int, size: int, mask: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of each row of ``s``, exactly, looking at few cells past one comparison pass.

    The first ``groups * size`` columns are a random sample of the items (the caller permutes them), cut
    into ``groups`` runs of ``size``. The k-th largest of the runs' maxima is a lower bound of the row's k-th
    largest score (k distinct items reach it), so every top-k item scores at least that threshold. Only the
    cells at or above it (about ``k * n / groups / size`` per row, times a small factor) are gathered and
    partially sorted. Rows whose threshold is -inf (excluded items in the sample) or that keep too many
    candidates fall back to :func:`_full_select`. ``mask`` is a reusable boolean buffer of ``s``'s shape.
    """
    n_rows, n = s.shape
    maxima = s[:, :groups * size].reshape(n_rows, groups, size).max(axis=2)
    thr = np.partition(maxima, groups - k, axis=1)[:, groups - k]
    np.greater_equal(s, thr[:, None], out=mask)
    # rows whose bound is -inf or ties the largest maximum (k runs share the top score: e.g. a zero query vector,
    # whose scores all tie) would gather most of the row: they are partially sorted whole below instead
    suspect = ~np.isfinite(thr) | (thr >= maxima.max(axis=1))
    if suspect.any():
        mask[suspect] = False
    r, c = np.divmod(np.flatnonzero(mask), n)
    counts = np.bincount(r, minlength=n_rows)
    bad = suspect | (counts > max(n // 8, 4 * k))
    if (bad & ~suspect).any():
        keep = ~bad[r]
        r, c = r[keep], c[keep]
        counts[bad] = 0
    part = np.zeros((n_rows, k), dtype=np.int64)
    vals = np.full((n_rows, k), -np.inf, dtype=s.dtype)
    if len(r):
        width = int(counts.max())
        starts = np.cumsum(counts) - counts
        pos = np.arange(len(r)) - starts[r]
        pad_s = np.full((n_rows, width), -np.inf, dtype=s.dtype)
        pad_i = np.zeros((n_rows, width), dtype=np.int64)
        pad_s[r, pos] = s[r, c]
        pad_i[r, pos] = c
        top = (np.argpartition(pad_s, width - k, axis=1)[:, width - k:] if k < width
               else np.arange(k)[None, :].repeat(n_rows, 0))
        part = np.take_along_axis(pad_i, top, axis=1)
        vals = np.take_along_axis(pad_s, top, axis=1)
    if bad.any():
        part[bad], vals[bad] = _full_select(s[bad], k)
    return part, vals


_SAMPLE_GROUPS = 64  # threshold: k-th largest of the maxima of 64 runs of a random sample of the items
_SAMPLE_COLUMNS = 8192  # sample size (at most a quarter of the catalogue)
_THREADS = None  # default worker threads for top_k blocks (None: os.cpu_count()); ann.query_threads sets it


def top_k(user_vecs: np.ndarray, item_vecs: np.ndarray, k: int, *, users: np.ndarray | None = None,
          exclude: sp.csr_matrix | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k items by dot product for each user (maximum inner product search by brute force).

    Users are scored in blocks (one float32 GEMM each into a reused buffer of about 64 MiB); blocks run on
    all cores (one BLAS thread per worker). In catalogues of >= 2,048 items (k <= n_items / 128) the k-th
    largest of the maxima of 64 runs of a fixed random sample of up to 8,192 items is a lower bound of each
    row's k-th largest score (k distinct items reach it), so only the items at or above it are partially sorted: selection costs one comparison pass over the scores
    instead of an ``argpartition`` of every row (see ``recsys-lab bench`` for the ratio to the bare GEMM).
    Results are exact: the bound never drops a top-k item.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32
    k : int
        Number of items per user (capped at n_items).
    users : ndarray of int64, shape (n,), optional
        Internal user indices to score (default: all).
    exclude : csr_matrix of shape (n_users, n_items), optional
        Nonzeros are never recommended (e.g. items seen in training).
    threads : int, optional
        Worker threads for the blocks (each with one BLAS thread). Default: the count set by
        :func:`recsys_lab.retrieval.ann.query_threads` when inside it, else ``os.cpu_count()``. A process that
        owns fewer CPUs than the machine has (a Ray worker) passes its own.

    Returns
    -------
    items : ndarray of shape (n, k), int64
        Internal item indices, best first; equal scores in item order (which of several items tied at the k-th
        score are kept is unspecified). Where fewer than k items remain after exclusion, the tail holds excluded
        items with score -inf.
    scores : ndarray of shape (n, k), float32

    Raises
    ------
    ConfigError
        ``threads`` below 1.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be >= 1, got {threads}", parameter="threads")
    users = np.arange(len(user_vecs)) if users is None else np.asarray(users, dtype=np.int64)
    n_items = len(item_vecs)
    k = min(k, n_items)
    out_i = np.empty((len(users), k), dtype=np.int64)
    out_s = np.empty((len(users), k), dtype=np.float32)
    if len(users) == 0 or k == 0:
        return out_i, out_s
    item_t = np.asarray(item_vecs, dtype=np.float32).T
    perm = None
    groups = max(_SAMPLE_GROUPS, 4 * k)
    size = min(_SAMPLE_COLUMNS, n_items // 4) // groups
    if size >= 8:
        # a fixed random order of the items: the first _SAMPLE_COLUMNS columns are the threshold sample
        perm = np.random.default_rng(0).permutation(n_items)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n_items)
        item_t = item_t[:, perm]
    item_t = np.ascontiguousarray(item_t)
    blocks = list(_batches(len(users), n_items))
    threads = max(1, min(threads or _THREADS or os.cpu_count() or 1, len(blocks)))

    def work(mine: list[tuple[int, int]]) -> None:
        step = max(hi - lo for lo, hi in mine)
        buf = np.empty((step, n_items), dtype=np.float32)
        mask = np.empty((step, n_items), dtype=bool) if perm is not None else None
        for lo, hi in mine:
            s = np.matmul(user_vecs[users[lo:hi]].astype(np.float32, copy=False), item_t, out=buf[:hi - lo])
            if exclude is not None:
                sub = exclude[users[lo:hi]]
                rows = np.repeat(np.arange(hi - lo), np.diff(sub.indptr))
                s[rows, sub.indices if perm is None else inv[sub.indices]] = -np.inf
            if perm is None:
                part, vals = _full_select(s, k)
            else:
                part, vals = _threshold_select(s, k, groups, size, mask[:hi - lo])
                part = perm[part]
            order = np.lexsort((part, -vals), axis=1)  # best first; equal scores by item index
            out_i[lo:hi] = np.take_along_axis(part, order, axis=1)
            out_s[lo:hi] = np.take_along_axis(vals, order, axis=1)

    if threads == 1:
        work(blocks)
    else:
        with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, [blocks[t::threads] for t in range(threads)]))  # re-raises a worker's error
    return out_i, out_s
