"""Benchmarks: figures and ratios against a baseline measured in the same process.

``recsys-lab bench`` (or ``python -m recsys_lab.tools.bench``) prints:

0. exact top-k for all users at 50k x 50k (d = 65) against the bare float32 GEMM of the same run;
1. top-k for every user: folded-embedding GEMM + selection vs ``LightFM.predict`` per user + sort;
2. ranking metrics: our vectorised ``evaluate`` vs ``lightfm.evaluation`` (precision@k + AUC);
3. candidate generation: pynndescent MIPS index vs exact numpy top-k, on the ML-100k item vectors and on a
   synthetic large catalogue, with recall@k and the numba compile cost reported separately.

Timings are wall seconds, best of ``repeat`` runs (after one warm-up run).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab.retrieval import ann
from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.models import lightfm as models
from recsys_lab.retrieval import topk
from recsys_lab._fs import atomic_write_with
from recsys_lab.config import Config

__all__ = ["best_of", "run", "lightfm_vectors", "topk_vs_gemm", "bare_gemm_seconds", "run_foldin",
           "ann_benchmark", "ann_crossover", "ann_sizes"]


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls, in seconds, after one warm-up call.

    Parameters
    ----------
    fn : callable
        Called with no argument; its result is discarded.
    repeat : int
        Timed calls (default 3).

    Returns
    -------
    float
        The shortest of the timed calls, in seconds (``time.perf_counter``).
    """
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _fitted(cfg: Config):  # noqa: ANN202
    """The configured data ingested and split, LightFM fit on the training positives (no early stopping):
    ``(job, fit result, (user_vecs, item_vecs))``."""
    from recsys_lab.pipeline import Retrain

    job = Retrain(cfg)
    job.ingest()
    ds = job.build_features()
    uf, itf = ds.user_features.matrix, ds.item_features.matrix
    res = models.fit(job.split.train, uf, itf, cfg.model)
    return job, res, models.embeddings(res.model, uf, itf)


def _line(name: str, ours: float, base: float, base_name: str) -> str:
    return f"{name:<44}{ours * 1e3:>10.1f} ms  vs {base_name} {base * 1e3:>10.1f} ms  ->  {base / ours:6.1f}x"


def run(config: Config | None = None, *, repeat: int = 3, large_items: int = 100_000, large_queries: int = 2_000,
        gemm_size: int = 50_000, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run all benchmarks on the configured data; returns the figures (seconds, ratios, recalls).

    Parameters
    ----------
    config : Config, optional
        Data and model settings (default ``Config()``: MovieLens 100k).
    repeat : int
        Timed repetitions (best is reported).
    large_items, large_queries : int
        Size of the synthetic catalogue for the ANN-vs-exact comparison at scale (0 skips it).
    gemm_size : int
        Users and items of the all-users top-k vs bare GEMM comparison (default 50,000 x 50,000; 0 skips it).
    echo : callable
        Where the lines go.

    Returns
    -------
    dict of str to float
        Figures keyed by benchmark (seconds, ratios, recalls); also echoed as text lines.
    """
    cfg = config or Config()
    out: dict[str, float] = {}
    if gemm_size:
        out.update(topk_vs_gemm(gemm_size, gemm_size, repeat=max(1, min(repeat, 3)), echo=echo))
    job, res, (u, i) = _fitted(cfg)
    ds, sp_ = job.dataset, job.split
    uf, itf = ds.user_features.matrix, ds.item_features.matrix
    n_users, n_items = ds.shape
    k = cfg.eval.k
    echo(f"data: {n_users} users x {n_items} items, {sp_.train.nnz} training positives; k = {k}")

    # 1. top-k for all users
    all_items = np.arange(n_items)

    def lightfm_topk() -> None:
        for user in range(n_users):
            s = res.model.predict(user, all_items, user_features=uf, item_features=itf, num_threads=cfg.model.num_threads)
            np.argsort(-s)[:k]

    t_ours = best_of(lambda: evaluation.top_k(u, i, k), repeat)
    t_lfm = best_of(lightfm_topk, max(1, repeat // 2))
    echo(_line("top-k, all users (GEMM + selection)", t_ours, t_lfm, "LightFM.predict"))
    out.update({"topk.ours_s": t_ours, "topk.lightfm_predict_s": t_lfm, "topk.speedup": t_lfm / t_ours})

    # 2. ranking metrics on the warm test users
    users = sp_.warm_test_users
    # LightFM's evaluation over the same users as ours: the warm test users only
    warm = np.zeros((n_users, 1), dtype=np.float32)
    warm[users] = 1.0
    test_warm = sp_.test.multiply(warm).tocsr()
    t_eval = best_of(lambda: evaluation.evaluate(u, i, sp_.test, users=users, exclude=sp_.train_seen, k=k), repeat)

    def lightfm_eval() -> None:
        models.lightfm_reference_metrics(res.model, test_warm, train_interactions=sp_.train_seen, k=k,
                                         user_features=uf, item_features=itf, num_threads=cfg.model.num_threads)

    t_lfm_eval = best_of(lightfm_eval, repeat)
    echo(_line("metrics (all 7 incl. MRR, AUC)", t_eval, t_lfm_eval, "lightfm.evaluation p@k+AUC"))
    out.update({"metrics.ours_s": t_eval, "metrics.lightfm_s": t_lfm_eval, "metrics.speedup": t_lfm_eval / t_eval})

    # 3. ANN vs exact
    t0 = time.perf_counter()
    method = cfg.ann.method if cfg.ann.method in ann.METHODS else "norm_range"  # auto/exact: the default index
    opts = {"method": method, "n_neighbors": cfg.ann.n_neighbors, "epsilon": cfg.ann.epsilon,
            "head_size": cfg.ann.head_size or None, "seed": cfg.model.seed}
    index = ann.MipsIndex(i, **opts)
    echo(f"MIPS index ({method}, {index.head_size} of {index.n_items} items exact): numba compile "
         f"{index.compile_seconds:.1f} s (once per process), "
         f"build {index.build_seconds * 1e3:.0f} ms; total {time.perf_counter() - t0:.1f} s")
    out.update({"ann.compile_s": index.compile_seconds, "ann.build_s": index.build_seconds})
    cases = [("ann.small", "ML-100k items", i, u, index)]
    if large_items:
        items_l, queries_l = _large(large_items, large_queries, u.shape[1], cfg.model.seed)
        t0 = time.perf_counter()
        index_l = ann.MipsIndex(items_l, **opts)
        echo(f"MIPS index: build over {large_items} synthetic items {time.perf_counter() - t0:.1f} s (numba compile "
             f"{index_l.compile_seconds:.1f} s of it)")
        cases.append(("ann.large", f"{large_items} synthetic items", items_l, queries_l, index_l))
    for key, name, items_vecs, queries, idx in cases:
        reps = repeat if key == "ann.small" else 1
        t_ann = best_of(lambda: idx.query(queries, k), reps)
        t_exact = best_of(lambda: evaluation.top_k(queries, items_vecs, k), reps)
        approx, _ = idx.query(queries, k)
        exact, _ = evaluation.top_k(queries, items_vecs, k)
        rec = evaluation.recall_overlap(approx, exact)
        echo(_line(f"MIPS top-{k}, {len(queries)} queries, {name}", t_ann, t_exact, "exact numpy")
             + f"  recall@{k} {rec:.3f}, {len(queries) / t_ann:,.0f} vs {len(queries) / t_exact:,.0f} queries/s")
        out.update({f"{key}.ann_s": t_ann, f"{key}.exact_s": t_exact, f"{key}.speedup": t_exact / t_ann,
                    f"{key}.recall": rec})
    return out


def bare_gemm_seconds(user_vecs: np.ndarray, item_vecs: np.ndarray) -> float:
    """Wall seconds of the bare float32 GEMM ``user_vecs @ item_vecs.T`` in the blocks of
    :func:`recsys_lab.evaluation.ranking.top_k`, into one reused buffer (no selection): the floor top-k is compared
    with. The faster of two layouts: one BLAS call per block on all BLAS threads, or one worker thread per
    core with one BLAS thread each.

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d), float32
        Query vectors.
    item_vecs : ndarray of shape (n_items, d)
        Item vectors (converted to a contiguous float32 transpose first, not timed).

    Returns
    -------
    float
        Seconds of the faster layout (one run of each).
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    item_t = np.ascontiguousarray(item_vecs.T, dtype=np.float32)
    n_items = item_t.shape[1]
    blocks = list(topk._batches(len(user_vecs), n_items))
    step = max(hi - lo for lo, hi in blocks)

    def work(mine: list[tuple[int, int]]) -> None:
        buf = np.empty((step, n_items), dtype=np.float32)
        for lo, hi in mine:
            np.matmul(user_vecs[lo:hi], item_t, out=buf[:hi - lo])

    t0 = time.perf_counter()
    work(blocks)
    blas_threads = time.perf_counter() - t0
    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, [blocks[t::threads] for t in range(threads)]))
    return min(blas_threads, time.perf_counter() - t0)


def topk_vs_gemm(n_users: int = 50_000, n_items: int = 50_000, *, dim: int = 65, k: int = 10, repeat: int = 3,
                 seed: int = 0, echo: Callable[[str], None] = print) -> dict[str, float]:
    """All-users exact top-k (:func:`recsys_lab.evaluation.ranking.top_k`) against the bare GEMM, same vectors, same
    process, runs interleaved; best of ``repeat`` each. Vectors: the clustered catalogue of :func:`_large`.

    Parameters
    ----------
    n_users, n_items : int
        Size of the generated problem (default 50,000 x 50,000).
    dim : int
        Vector length (default 65).
    k : int
        List length (default 10).
    repeat : int
        Interleaved runs of each; the best is kept (default 3).
    seed : int
        Seed of the generated vectors.
    echo : callable
        Receives one summary line.

    Returns
    -------
    dict
        ``topk_gemm.topk_s``, ``topk_gemm.gemm_s`` (seconds) and ``topk_gemm.ratio`` (top-k / GEMM).
    """
    items, users = _large(n_items, n_users, dim, seed)
    t_topk, t_gemm = [], []
    for _ in range(repeat):
        t_gemm.append(bare_gemm_seconds(users, items))
        t0 = time.perf_counter()
        evaluation.top_k(users, items, k)
        t_topk.append(time.perf_counter() - t0)
    out = {"topk_gemm.topk_s": min(t_topk), "topk_gemm.gemm_s": min(t_gemm)}
    out["topk_gemm.ratio"] = out["topk_gemm.topk_s"] / out["topk_gemm.gemm_s"]
    echo(f"exact top-{k}, {n_users} users x {n_items} items (d = {dim}): {out['topk_gemm.topk_s']:.2f} s vs bare "
         f"float32 GEMM {out['topk_gemm.gemm_s']:.2f} s -> {out['topk_gemm.ratio']:.2f}x the GEMM")
    return out


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


def _large(n_items: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A clustered synthetic catalogue (200 taste clusters, like learned embeddings, unlike i.i.d. Gaussians
    on which every graph index degrades to brute force) with spread-out norms."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, dim)).astype(np.float32)
    items = centers[rng.integers(0, 200, n_items)] + 0.35 * rng.normal(size=(n_items, dim)).astype(np.float32)
    items *= rng.lognormal(0, 0.3, (n_items, 1)).astype(np.float32)
    queries = centers[rng.integers(0, 200, n_queries)] + 0.35 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    return items.astype(np.float32), queries.astype(np.float32)


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


def _percentiles(fns: list[Callable[[int], object]], n: int) -> list[tuple[float, float]]:
    """p50 and p99 wall seconds of each ``fn(q)``, q in 0..n-1, the functions interleaved call by call (so that
    load on a shared machine hits them alike), after 20 warm-up rounds."""
    for q in range(min(20, n)):
        for fn in fns:
            fn(q)
    times = np.empty((len(fns), n))
    for q in range(n):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn(q)
            times[j, q] = time.perf_counter() - t0
    return [(float(np.percentile(t, 50)), float(np.percentile(t, 99))) for t in times]


def run_foldin(config: Config | None = None, *, n_queries: int = 1000, picks: int = 5, large_items: int = 100_000,
               update_users: int = 10_000, echo: Callable[[str], None] = print) -> dict[str, float]:
    """Fold-in latency and update throughput (``recsys-lab bench --foldin``).

    1. Onboarding latency: fold-in of ``picks`` random items + exact top-10 for one user, per call, p50 and p99
       over ``n_queries`` calls (BLAS limited to one thread, as one request would run), against serving a stored user vector (top-10 only) in the same run, on the
       ML-100k item vectors (a LightFM fit of ``config``) and on a synthetic catalogue of ``large_items`` items.
    2. Update throughput (users per second): ``update_users`` touched users with 1-20 new interactions each,
       folded in one batched call, against folding the same users one call at a time; and, for scale, the
       users a full LightFM fit refreshes per second.

    Returns the figures (seconds, users per second, ratios), keys ``foldin.*``.

    Parameters
    ----------
    config : Config, optional
        Data and model settings (default ``Config()``: MovieLens 100k).
    n_queries : int
        Timed onboarding calls per case (default 1,000).
    picks : int
        Items each onboarded user picked (default 5).
    large_items : int
        Size of the synthetic catalogue (default 100,000; 0 skips it).
    update_users : int
        Users touched in the update-throughput test (default 10,000).
    echo : callable
        Receives the result lines.

    Returns
    -------
    dict of str to float
        ``foldin.*`` figures: latencies in seconds, throughputs in users per second, and ratios.
    """
    from recsys_lab.models import foldin

    cfg = config or Config()
    _, res, (u_small, i_small) = _fitted(cfg)
    rng = np.random.default_rng(cfg.model.seed)
    out: dict[str, float] = {"foldin.retrain_users_per_s": len(u_small) / res.fit_seconds}
    cases = [("small", "ML-100k items", i_small, u_small)]
    if large_items:
        items_l, queries_l = _large(large_items, 100, u_small.shape[1] - 1, cfg.model.seed)
        items_l = np.hstack([items_l, rng.normal(0, 0.3, (large_items, 1)).astype(np.float32)])
        cases.append(("large", f"{large_items} synthetic items", items_l,
                      np.hstack([queries_l, np.ones((len(queries_l), 1), np.float32)])))
    from threadpoolctl import threadpool_limits

    for key, name, iv, uv in cases:
        n_items = len(iv)
        picks_q = rng.integers(0, n_items, size=(n_queries, picks))
        folds = {method: foldin.FoldIn(iv, method=method) for method in ("mean", "ridge")}
        calls = [lambda q, f=f: foldin.top_k_one(f.user(picks_q[q]), iv, 10, exclude=picks_q[q])
                 for f in folds.values()]
        calls.append(lambda q: foldin.top_k_one(uv[q % len(uv)], iv, 10))
        with threadpool_limits(1):  # one request, one core: BLAS threads only contend at this size
            figures = _percentiles(calls, n_queries)
        for label, (p50, p99) in zip(["mean", "ridge", "stored"], figures):
            out.update({f"foldin.{key}.{label}.p50_s": p50, f"foldin.{key}.{label}.p99_s": p99})
            what = (f"fold-in ({label}) + top-10, {picks} picks" if label != "stored"
                    else "baseline: stored user vector + top-10")
            echo(f"{what:<40} {name:<24} p50 {p50 * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms")

        counts = rng.integers(1, 21, size=update_users)
        cols = rng.integers(0, n_items, size=int(counts.sum()))
        touched = sp.csr_matrix((np.ones(len(cols), np.float32), cols, np.concatenate([[0], np.cumsum(counts)])),
                                shape=(update_users, n_items))
        for method in ("mean", "ridge"):
            fold = foldin.FoldIn(iv, method=method)
            t_batch = best_of(lambda: fold.users(touched), 1)
            n_loop = min(update_users, 1000)
            t0 = time.perf_counter()
            for r in range(n_loop):
                fold.user(touched.indices[touched.indptr[r]:touched.indptr[r + 1]])
            t_loop = (time.perf_counter() - t0) / n_loop * update_users
            out.update({f"foldin.{key}.{method}.update_users_per_s": update_users / t_batch,
                        f"foldin.{key}.{method}.loop_users_per_s": update_users / t_loop})
            echo(f"update ({method}), {update_users} users, {name:<22} {update_users / t_batch:>10,.0f} users/s  vs one "
                 f"call per user {update_users / t_loop:>8,.0f} users/s  ->  {t_loop / t_batch:5.1f}x")
    echo(f"reference: a full LightFM fit refreshes {out['foldin.retrain_users_per_s']:,.0f} users/s "
         f"({len(u_small)} users in {res.fit_seconds:.1f} s)")
    return out


if __name__ == "__main__":  # pragma: no cover
    run()
