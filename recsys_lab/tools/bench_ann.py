"""Candidate-generation benchmarks (``recsys-lab bench --ann``): recsys_lab's index vs exact top-k vs hnswlib ``ip``
on real LightFM vectors trained on generated logs, and the exact/index crossover."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from recsys_lab._fs import atomic_write_with
from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.models import lightfm as models
from recsys_lab.retrieval import ann, topk
from recsys_lab.tools.bench import best_of

__all__ = ["ann_sizes", "ann_benchmark", "ann_crossover", "lightfm_vectors"]


def ann_sizes(n_items: int) -> tuple[int, int, int]:
    """``(users, items, interactions)`` of the generated log for an ANN benchmark at ``n_items``:
    ``min(n_items // 2, 200_000)`` users, ``max(20 * users, 5 * n_items)`` interactions (100k items: 50k
    users, 1 M interactions; 1 M items: 200k users, 5 M interactions).

    Parameters
    ----------
    n_items : int
        Catalogue size.

    Returns
    -------
    tuple of int
        ``(users, items, interactions)``; users at least 100.
    """
    users = max(100, min(n_items // 2, 200_000))
    return users, n_items, max(20 * users, 5 * n_items)


_HNSW_EFS = (10, 15, 20, 30, 40, 50, 60, 80, 100, 120, 160, 240, 320, 480, 640)


def _qps(fn: Callable[[], object], n: int, repeat: int) -> float:
    return n / best_of(fn, repeat)


def ann_benchmark(sizes: tuple[tuple[int, int, int], ...] = ((50_000, 100_000, 1_000_000),
                                                              (200_000, 1_000_000, 5_000_000)),
                  *, n_queries: int = 2_000, k: int = 10, threads: tuple[int, ...] = (1, 2), repeat: int = 3,
                  head_size: int | None = None, epsilon: float = 0.1, n_neighbors: int = 30,
                  hnsw_m: int = 16, hnsw_ef_construction: int = 200, cache_dir: str | Path | None = None,
                  seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Candidate generation on real LightFM vectors: recsys_lab's ``norm_range`` index vs exact top-k vs
    hnswlib ``ip`` at matched recall, same queries, same process, same threads.

    For each ``(users, items, interactions)`` size a :mod:`recsys_lab.data.synthetic` log is generated and LightFM
    trained on it (:func:`lightfm_vectors`); ``n_queries`` real users' vectors (seeded sample) are the
    queries. hnswlib (``M``, ``ef_construction``) is swept over ``ef``; its figures are taken at the smallest
    ``ef`` whose recall@k reaches ours ("matched recall"). Queries/s are the best of ``repeat`` runs on 1 and
    2 threads (numba + BLAS threads for ours, ``set_num_threads`` for hnswlib); build seconds on all threads,
    numba compilation reported apart; memory is the pickled index size.

    Parameters
    ----------
    sizes : tuple of (int, int, int)
        ``(users, items, interactions)`` of each generated log (default 100k and 1 M items; see
        :func:`ann_sizes`).
    n_queries : int
        Users whose vectors are the queries (default 2,000).
    k : int
        List length (default 10).
    threads : tuple of int
        Thread counts the queries/s are measured on (default ``(1, 2)``).
    repeat : int
        Runs per measurement; the best is kept (default 3).
    head_size : int, optional
        ``norm_range`` head size (default: the index's own).
    epsilon : float
        ``norm_range`` search epsilon (default 0.1).
    n_neighbors : int
        pynndescent graph degree (default 30).
    hnsw_m, hnsw_ef_construction : int
        hnswlib ``M`` and ``ef_construction`` (default 16, 200).
    cache_dir : str or Path, optional
        Where the trained LightFM vectors of each size are cached between runs (default: no cache).
    seed : int
        Seed of the generated logs, the fits and the query sample.
    echo : callable
        Receives the progress and result lines.

    Returns
    -------
    dict
        Per size ``ann.<items>.`` + ``recall``, ``qps_<t>t``, ``build_s``, ``mib``, ``hnsw.recall``,
        ``hnsw.ef``, ``hnsw.qps_<t>t``, ``hnsw.build_s``, ``hnsw.mib``, ``exact.qps_<t>t``, ``ratio_<t>t``
        (ours / hnswlib queries/s) and ``ann.compile_s``.

    Raises
    ------
    ModelError
        hnswlib missing (install the ``bench`` extra: ``pip install 'recsys_lab[bench]'``).
    """
    import pickle

    from threadpoolctl import threadpool_limits

    from recsys_lab.errors import ModelError

    try:
        import hnswlib
    except ImportError as exc:  # pragma: no cover - the bench extra is installed where this runs
        raise ModelError("recsys-lab bench --ann compares with hnswlib: pip install 'recsys_lab[bench]'") from exc
    out: dict[str, float] = {}
    for n_users, n_items, n_inter in sizes:
        t0 = time.perf_counter()
        users, items = lightfm_vectors(n_users, n_items, n_inter, seed=seed, cache_dir=cache_dir)
        echo(f"\n== LightFM vectors: {n_users:,} users x {n_items:,} items, {n_inter:,} interactions "
             f"(d = {items.shape[1]}; {time.perf_counter() - t0:.0f} s incl. training unless cached)")
        q = users[np.sort(np.random.default_rng(seed).choice(n_users, min(n_queries, n_users), replace=False))]
        key = f"ann.{n_items}"
        exact, _ = evaluation.top_k(q, items, k)
        row: dict[str, float] = {}
        for t in threads:
            with threadpool_limits(t, user_api="blas"):
                old, topk._THREADS = topk._THREADS, t
                try:
                    row[f"exact.qps_{t}t"] = _qps(lambda: evaluation.top_k(q, items, k), len(q), repeat)
                finally:
                    topk._THREADS = old
        index = ann.MipsIndex(items, head_size=head_size, epsilon=epsilon, n_neighbors=n_neighbors, seed=seed)
        out["ann.compile_s"] = max(out.get("ann.compile_s", 0.0), index.compile_seconds)
        got, _ = index.query(q, k)
        row.update({"recall": evaluation.recall_overlap(got, exact), "build_s": index.build_seconds,
                    "mib": len(pickle.dumps(index)) / 2**20, "head": index.head_size})
        for t in threads:
            with ann.query_threads(t):
                row[f"qps_{t}t"] = _qps(lambda: index.query(q, k), len(q), repeat)
        echo(f"recsys_lab norm_range: recall@{k} {row['recall']:.3f}, build {row['build_s']:.1f} s, "
             + ", ".join(f"{row[f'qps_{t}t']:,.0f} q/s on {t} thread(s)" for t in threads)
             + "; exact top-k " + ", ".join(f"{row[f'exact.qps_{t}t']:,.0f}" for t in threads) + " q/s; hnswlib next")
        t0 = time.perf_counter()
        h = hnswlib.Index(space="ip", dim=items.shape[1])
        h.init_index(max_elements=n_items, M=hnsw_m, ef_construction=hnsw_ef_construction, random_seed=seed)
        h.set_num_threads(max(threads))
        h.add_items(items)
        row["hnsw.build_s"] = time.perf_counter() - t0
        row["hnsw.mib"] = len(pickle.dumps(h)) / 2**20
        h.set_num_threads(1)
        sweep = []
        for ef in _HNSW_EFS:
            h.set_ef(max(ef, k))
            rec = evaluation.recall_overlap(h.knn_query(q, k=k)[0].astype(np.int64), exact)
            sweep.append((ef, rec))
            if rec >= row["recall"]:
                break
        at95 = next(((e, r) for e, r in sweep if r >= 0.95), None)
        if at95 is not None and at95[0] != sweep[-1][0]:  # hnswlib's fastest setting at the 0.95 bar
            h.set_ef(max(at95[0], k))
            row.update({"hnsw95.ef": at95[0], "hnsw95.recall": at95[1],
                        "hnsw95.qps_1t": _qps(lambda: h.knn_query(q, k=k), len(q), repeat)})
        ef, rec = sweep[-1]
        h.set_ef(max(ef, k))
        row.update({"hnsw.ef": ef, "hnsw.recall": rec})
        for t in threads:
            h.set_num_threads(t)
            row[f"hnsw.qps_{t}t"] = _qps(lambda: h.knn_query(q, k=k), len(q), repeat)
            row[f"ratio_{t}t"] = row[f"qps_{t}t"] / row[f"hnsw.qps_{t}t"]
        out.update({f"{key}.{name}": value for name, value in row.items()})
        echo("hnswlib ef sweep (recall@%d): %s" % (k, ", ".join(f"ef {e}: {r:.3f}" for e, r in sweep)))
        head = f"{'method':<44}{'recall@' + str(k):>10}" + "".join(f"{f'q/s {t}t':>12}" for t in threads) \
            + f"{'build s':>10}{'MiB':>8}"
        echo(head)
        echo(f"{'recsys_lab norm_range (head ' + str(index.head_size) + ', eps ' + str(epsilon) + ')':<44}"
             f"{row['recall']:>10.3f}" + "".join(f"{row[f'qps_{t}t']:>12,.0f}" for t in threads)
             + f"{row['build_s']:>10.1f}{row['mib']:>8.0f}")
        echo(f"{f'hnswlib ip (M {hnsw_m}, efC {hnsw_ef_construction}, ef {ef})':<44}{rec:>10.3f}"
             + "".join(f"{row[f'hnsw.qps_{t}t']:>12,.0f}" for t in threads)
             + f"{row['hnsw.build_s']:>10.1f}{row['hnsw.mib']:>8.0f}")
        if "hnsw95.ef" in row:
            label = f"hnswlib ip, fastest at >= 0.95 (ef {row['hnsw95.ef']})"
            echo(f"{label:<44}{row['hnsw95.recall']:>10.3f}{row['hnsw95.qps_1t']:>12,.0f}")
        echo(f"{'exact numpy top-k':<44}{1.0:>10.3f}" + "".join(f"{row[f'exact.qps_{t}t']:>12,.0f}" for t in threads))
        echo("recsys_lab / hnswlib queries/s at matched recall: "
             + ", ".join(f"{row[f'ratio_{t}t']:.2f}x on {t} thread(s)" for t in threads)
             + f"; numba compile {index.compile_seconds:.1f} s (once per process, not in build)")
    return out


def ann_crossover(user_vecs: np.ndarray, item_vecs: np.ndarray, *, sizes: tuple[int, ...] = (
        5_000, 10_000, 20_000, 50_000, 100_000), k: int = 10, n_queries: int = 2_000, repeat: int = 3,
        seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Where the ``norm_range`` index starts to pay: catalogue subsets (seeded random items) of each size;
    queries/s of exact :func:`recsys_lab.evaluation.ranking.top_k` vs the index on ``n_queries`` real users (batch,
    all threads, best of ``repeat``), the index's build seconds (numba compile excluded: a per-process cost,
    reported by the caller) and the break-even number of queries ``build / (1/qps_exact - 1/qps_index)``.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d + 1), float32
        Query vectors (real users').
    item_vecs : ndarray of shape (n_items, d + 1), float32
        The catalogue the subsets are drawn from; sizes above ``n_items`` are skipped.
    sizes : tuple of int
        Catalogue sizes tried, ascending (default 5k to 100k).
    k : int
        List length (default 10).
    n_queries : int
        Users in the seeded query sample (default 2,000).
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
    q = user_vecs[np.sort(rng.choice(len(user_vecs), min(n_queries, len(user_vecs)), replace=False))]
    out: dict[str, float] = {"crossover.items": 0.0}
    echo(f"\n== crossover: {len(q):,} users' top-{k}, exact vs norm_range index (queries/s, all threads)")
    for n in sizes:
        if n > len(item_vecs):
            break
        items = item_vecs[np.sort(rng.choice(len(item_vecs), n, replace=False))]
        exact, _ = evaluation.top_k(q, items, k)
        qps_exact = _qps(lambda: evaluation.top_k(q, items, k), len(q), repeat)
        index = ann.MipsIndex(items, seed=seed)
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
        echo(f"{n:>9,} items: exact {qps_exact:>9,.0f} q/s, index {qps_index:>9,.0f} q/s (head {index.head_size}, "
             f"build {index.build_seconds:.1f} s, recall@{k} {rec:.3f}); the index pays after "
             + (f"{even:,.0f} queries" if np.isfinite(even) else "never"))
    return out


def lightfm_vectors(n_users: int, n_items: int, n_interactions: int, *, epochs: int = 10, seed: int = 0,
                    num_threads: int = 2, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real LightFM vectors for benchmarks: a :mod:`recsys_lab.data.synthetic` log, binarised, fitted by
    :func:`recsys_lab.models.lightfm.fit` (WARP, 64 components, identity features) and folded by
    :func:`recsys_lab.models.lightfm.embeddings`.

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Sizes of the generated log.
    epochs, seed, num_threads : int
        LightFM settings.
    cache_dir : path, optional
        Where to keep ``lightfm_<users>_<items>_<interactions>_<epochs>_<seed>.npz``; a cached file is reused.

    Returns
    -------
    user_vecs : ndarray of shape (n_users, 65), float32
    item_vecs : ndarray of shape (n_items, 65), float32
    """
    import scipy.sparse as sp

    from recsys_lab.data import synthetic
    from recsys_lab.config import ModelConfig

    cache = (Path(cache_dir) / f"lightfm_{n_users}_{n_items}_{n_interactions}_{epochs}_{seed}.npz"
             if cache_dir else None)
    if cache is not None and cache.exists():
        with np.load(cache) as z:
            return z["users"], z["items"]
    log = synthetic.generate(n_users, n_items, n_interactions, seed=seed)
    rows = log.interactions["user_id"].to_numpy()
    cols = log.interactions["item_id"].to_numpy()
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    train.sum_duplicates()
    train.data[:] = 1.0
    cfg = ModelConfig(epochs=epochs, patience=0, seed=seed, num_threads=num_threads)
    uf = sp.identity(n_users, dtype=np.float32, format="csr")
    itf = sp.identity(n_items, dtype=np.float32, format="csr")
    res = models.fit(train, uf, itf, cfg)
    u, i = models.embeddings(res.model, uf, itf)
    if cache is not None:
        def _save(path: Path) -> None:
            with open(path, "wb") as fh:
                np.savez(fh, users=u, items=i)

        atomic_write_with(cache, _save)
    return u, i
