"""``recsys-lab bench --ann``: candidate generation on test sets that cannot flatter the index.

For each set of :mod:`recsys_lab.tools.ann_sets` (real models' vectors: LightFM on two generator shapes, implicit ALS,
MovieLens 100k and a 100k-item log grown from it) the users are split in two seeded halves: ``n_queries`` users are
the measured queries, the others the held-out pool the index calibrates on. "Ours" is the index the default
configuration builds for that catalogue (:meth:`recsys_lab.config.AnnConfig.resolved_method`: exact search on
small catalogues, the calibrated exact head + hnswlib graph on large ones). hnswlib ``ip`` alone (``M``,
``ef_construction``) is swept over ``ef`` and taken at the smallest ``ef`` whose recall@k reaches ours ("matched
recall"). Queries/s are the best of ``repeat`` batch runs of the same queries on 1 and 2 threads, same process, ours,
hnswlib's and exact top-k's runs interleaved.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from recsys_lab.config import AnnConfig
from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.retrieval import ann
from recsys_lab.tools.ann_sets import SETS, vector_set
from recsys_lab.tools.bench import best_of

__all__ = ["ann_benchmark", "ann_crossover"]

_HNSW_EFS = (10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640, 800, 1000, 1280,
             1600, 2000)  # the same steps as the index's own calibration


def _qps(fn: Callable[[], object], n: int, repeat: int) -> float:
    return n / best_of(fn, repeat)


def _interleaved(fns: list[Callable[[], object]], n: int, repeat: int) -> list[float]:
    """Queries/s of each function, runs interleaved (one warm-up round, then the best of ``repeat`` rounds), so that
    load from other processes on a shared machine hits them alike."""
    best = [float("inf")] * len(fns)
    for r in range(repeat + 1):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            if r:
                best[j] = min(best[j], time.perf_counter() - t0)
    return [n / b for b in best]


def _split_users(users: np.ndarray, n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured queries (a seeded sample of at most half the users) and the held-out rest (calibration pool)."""
    perm = np.random.default_rng(seed).permutation(len(users))
    n = min(n_queries, len(users) // 2)
    return users[np.sort(perm[:n])], users[np.sort(perm[n:])]


def _hnsw(items: np.ndarray, q: np.ndarray, exact: np.ndarray, k: int, want: float, *, m: int, ef_c: int,
          seed: int, threads: tuple[int, ...]) -> tuple[dict[str, float], object]:
    """hnswlib ``ip``: build, ``ef`` sweep (1 thread) up to the first recall >= ``want``; the index set there."""
    import hnswlib

    t0 = time.perf_counter()
    h = hnswlib.Index(space="ip", dim=items.shape[1])
    h.init_index(max_elements=len(items), M=m, ef_construction=ef_c, random_seed=seed)
    h.set_num_threads(max(threads))
    h.add_items(items)
    row: dict[str, float] = {"hnsw.build_s": time.perf_counter() - t0}
    h.set_num_threads(1)
    sweep = []
    for ef in _HNSW_EFS:
        h.set_ef(max(ef, k))
        rec = evaluation.recall_overlap(h.knn_query(q, k=k)[0].astype(np.int64), exact)
        sweep.append((ef, rec))
        if rec >= want:
            break
    ef, rec = sweep[-1]
    h.set_ef(max(ef, k))
    row.update({"hnsw.ef": ef, "hnsw.recall": rec, "hnsw.matched": float(rec >= want)})
    row["hnsw.sweep"] = ", ".join(f"ef {e}: {r:.3f}" for e, r in sweep)  # type: ignore[assignment]
    return row, h


def _one_set(name: str, users: np.ndarray, items: np.ndarray, *, n_queries: int, k: int, threads: tuple[int, ...],
             repeat: int, cfg: AnnConfig, hnsw: dict, seed: int) -> dict[str, float]:
    q, pool = _split_users(users, n_queries, seed)
    exact, _ = evaluation.top_k(q, items, k)
    method = cfg.resolved_method(len(items))
    t0 = time.perf_counter()
    index = ann.MipsIndex(items, method=method, queries=pool, target_recall=cfg.target_recall, k=k, seed=seed)
    row: dict[str, float] = {"build_s": time.perf_counter() - t0, "head": index.head_size, "ef": index.ef,
                             "items": len(items), "queries": len(q)}
    got, _ = index.query(q, k)
    row["recall"] = evaluation.recall_overlap(got, exact)
    row["method"] = method  # type: ignore[assignment]
    figures, h = _hnsw(items, q, exact, k, row["recall"], seed=seed, threads=threads, **hnsw)
    row.update(figures)
    for t in threads:
        h.set_num_threads(t)
        with ann.query_threads(t):
            row[f"qps_{t}t"], row[f"hnsw.qps_{t}t"], row[f"exact.qps_{t}t"] = _interleaved(
                [lambda: index.query(q, k), lambda: h.knn_query(q, k=k), lambda: evaluation.top_k(q, items, k)],
                len(q), repeat)
        row[f"ratio_{t}t"] = row[f"qps_{t}t"] / row[f"hnsw.qps_{t}t"]
    return row


def ann_benchmark(sizes: tuple[tuple[int, int, int], ...] = ((50_000, 100_000, 1_000_000),), *,
                  sets: tuple[str, ...] = SETS, n_queries: int = 2_000, k: int = 10, threads: tuple[int, ...] = (1, 2),
                  repeat: int = 3, config: AnnConfig | None = None, hnsw_m: int = 16, hnsw_ef_construction: int = 200,
                  epochs: int = 10, cache_dir: str | Path | None = None, seed: int = 0,
                  echo: Callable[[str], None] = print) -> dict[str, float]:
    """Recall@k and queries/s of the default candidate generation against hnswlib ``ip`` at matched recall, on
    every test set (see the module docstring), with one summary table.

    Parameters
    ----------
    sizes : tuple of (int, int, int)
        ``(users, items, interactions)`` per catalogue size (see :func:`recsys_lab.tools.ann_sets.ann_sizes`); the
        generated sets use the item count (``ml100k`` is always MovieLens' 1,682 items and runs once).
    sets : tuple of str
        Test sets (default all of :data:`recsys_lab.tools.ann_sets.SETS`).
    n_queries : int
        Measured users per set (default 2,000; at most half the users, the other half is the calibration pool).
    k : int
        List length (default 10).
    threads : tuple of int
        Thread counts of the queries/s (default ``(1, 2)``).
    repeat : int
        Timed runs per figure; the best is kept (default 3).
    config : AnnConfig, optional
        The configuration whose resolved method is "ours" (default ``AnnConfig()``).
    hnsw_m, hnsw_ef_construction : int
        hnswlib ``M`` and ``ef_construction`` (default 16, 200).
    epochs : int
        LightFM epochs of the generated sets (cached per value).
    cache_dir : path, optional
        Folder of the cached vectors (default: a folder in the system temp dir).
    seed : int
        Seed of the logs, fits, user split and index.
    echo : callable
        Receives the progress lines and the table.

    Returns
    -------
    dict
        Per set ``ann.<set>.<items>.`` + ``recall``, ``qps_<t>t``, ``exact.qps_<t>t``, ``hnsw.qps_<t>t``,
        ``hnsw.recall``, ``hnsw.ef``, ``hnsw.matched``, ``ratio_<t>t``, ``build_s``, ``hnsw.build_s``, ``head``,
        ``ef`` (ours); and ``ann.min_recall``, ``ann.min_ratio_<t>t`` over all sets.
    """
    cfg = config or AnnConfig()
    hnsw = {"m": hnsw_m, "ef_c": hnsw_ef_construction}
    out: dict[str, float] = {}
    rows: list[tuple[str, dict]] = []
    jobs = [(name, n) for n in dict.fromkeys(s[1] for s in sizes) for name in sets
            if name != "ml100k" or n == sizes[0][1]]
    for name, n_items in jobs:
        t0 = time.perf_counter()
        users, items = vector_set(name, n_items, seed=seed, epochs=epochs, cache_dir=cache_dir, echo=echo)
        row = _one_set(name, users, items, n_queries=n_queries, k=k, threads=threads, repeat=repeat, cfg=cfg,
                       hnsw=hnsw, seed=seed)
        label = f"{name}.{len(items)}"
        rows.append((label, row))
        echo(f"{label}: {row['method']} (head {row['head']}, ef {row['ef']}) recall@{k} {row['recall']:.3f}, "
             f"build {row['build_s']:.1f} s; hnswlib build {row['hnsw.build_s']:.1f} s, sweep {row['hnsw.sweep']}; "
             f"{time.perf_counter() - t0:.0f} s")
        out.update({f"ann.{label}.{key}": float(v) for key, v in row.items() if not isinstance(v, str)})
    echo(f"\n== candidate generation, top-{k}, {n_queries:,} real users' queries per set (held out from calibration)")
    head = (f"{'set':<22}{'ours':<18}{'recall':>7}" + "".join(f"{f'ours {t}t':>10}" for t in threads)
            + f"{'hnsw ef':>8}{'recall':>7}" + "".join(f"{f'hnsw {t}t':>10}" for t in threads)
            + "".join(f"{f'ratio {t}t':>9}" for t in threads) + "".join(f"{f'exact {t}t':>10}" for t in threads))
    echo(head)
    for label, r in rows:
        ours = r["method"] + (f" h{r['head']} ef{r['ef']}" if r["method"] == "hnsw" else "")
        ef = f"{r['hnsw.ef']}" + ("" if r["hnsw.matched"] else "*")
        echo(f"{label:<22}{ours:<18}{r['recall']:>7.3f}" + "".join(f"{r[f'qps_{t}t']:>10,.0f}" for t in threads)
             + f"{ef:>8}{r['hnsw.recall']:>7.3f}" + "".join(f"{r[f'hnsw.qps_{t}t']:>10,.0f}" for t in threads)
             + "".join(f"{r[f'ratio_{t}t']:>8.2f}x" for t in threads)
             + "".join(f"{r[f'exact.qps_{t}t']:>10,.0f}" for t in threads))
    out["ann.min_recall"] = min(r["recall"] for _, r in rows)
    for t in threads:
        out[f"ann.min_ratio_{t}t"] = min(r[f"ratio_{t}t"] for _, r in rows)
    echo(f"queries/s; ratio = ours / hnswlib at the smallest ef reaching our recall (* : hnswlib never reached it, "
         f"up to ef {_HNSW_EFS[-1]}). Lowest recall {out['ann.min_recall']:.3f}, lowest ratio "
         + ", ".join(f"{out[f'ann.min_ratio_{t}t']:.2f}x on {t} thread(s)" for t in threads))
    return out


def ann_crossover(user_vecs: np.ndarray, item_vecs: np.ndarray, *, sizes: tuple[int, ...] = (
        5_000, 10_000, 20_000, 50_000, 100_000), k: int = 10, n_queries: int = 2_000, repeat: int = 3,
        seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Where the ``hnsw`` index starts to pay: catalogue subsets (seeded random items) of each size; queries/s of
    exact :func:`recsys_lab.evaluation.ranking.top_k` vs the index on ``n_queries`` real users (batch, all threads,
    best of ``repeat``; the index calibrated on the other users), the index's build seconds and the break-even
    number of queries ``build / (1/qps_exact - 1/qps_index)``.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
        Real users' vectors: queries and calibration pool.
    item_vecs : ndarray of shape (n_items, d), float32
        The catalogue the subsets are drawn from; sizes above ``n_items`` are skipped.
    sizes : tuple of int
        Catalogue sizes tried, ascending (default 5k to 100k).
    k : int
        List length (default 10).
    n_queries : int
        Users in the seeded query sample (default 2,000; at most half the users).
    repeat : int
        Runs per measurement; the best is kept (default 3).
    seed : int
        Seed of the samples and of the index.
    echo : callable
        Receives one line per size.

    Returns
    -------
    dict
        ``crossover.<n>.exact_qps``, ``.index_qps``, ``.build_s``, ``.recall``, ``.break_even_queries`` (inf
        when the index is not faster) and ``crossover.items``: the smallest size where the index answers more
        queries/s than exact search (0 when none does).
    """
    rng = np.random.default_rng(seed)
    q, pool = _split_users(user_vecs, n_queries, seed)
    out: dict[str, float] = {"crossover.items": 0.0}
    echo(f"\n== crossover: {len(q):,} users' top-{k}, exact vs hnsw index (queries/s, all threads)")
    for n in sizes:
        if n > len(item_vecs):
            break
        items = item_vecs[np.sort(rng.choice(len(item_vecs), n, replace=False))]
        exact, _ = evaluation.top_k(q, items, k)
        qps_exact = _qps(lambda: evaluation.top_k(q, items, k), len(q), repeat)
        index = ann.MipsIndex(items, method="hnsw", queries=pool, k=k, seed=seed)
        got, _ = index.query(q, k)
        qps_index = _qps(lambda: index.query(q, k), len(q), repeat)
        rec = evaluation.recall_overlap(got, exact)
        gain = 1 / qps_exact - 1 / qps_index
        even = index.build_seconds / gain if gain > 0 else float("inf")
        out.update({f"crossover.{n}.exact_qps": qps_exact, f"crossover.{n}.index_qps": qps_index,
                    f"crossover.{n}.build_s": index.build_seconds, f"crossover.{n}.recall": rec,
                    f"crossover.{n}.break_even_queries": even})
        if qps_index > qps_exact and not out["crossover.items"]:
            out["crossover.items"] = float(n)
        echo(f"{n:>9,} items: exact {qps_exact:>9,.0f} q/s, hnsw {qps_index:>9,.0f} q/s (head {index.head_size}, ef "
             f"{index.ef}, build {index.build_seconds:.1f} s, recall@{k} {rec:.3f}); the index pays after "
             + (f"{even:,.0f} queries" if np.isfinite(even) else "never"))
    return out
