"""Benchmarks: figures and ratios against a baseline measured in the same process.

``recsys-lab bench`` (or ``python -m recsys_lab.tools.bench``) prints:

0. exact top-k for all users at 50k x 50k (d = 65) against the bare float32 GEMM of the same run;
1. top-k for every user: folded-embedding GEMM + selection vs ``LightFM.predict`` per user + sort;
2. ranking metrics: our vectorised ``evaluate`` vs ``lightfm.evaluation`` (precision@k + AUC);
3. candidate generation: the MIPS index vs exact numpy top-k, on the ML-100k item vectors and on a synthetic
   large catalogue, with recall@k (``bench --ann``, :mod:`recsys_lab.tools.ann_bench`, compares with hnswlib).

``recsys-lab bench --foldin`` prints fold-in latency and update throughput (:func:`run_foldin`); ``--ann``
compares candidate generation on LightFM vectors with hnswlib (:mod:`recsys_lab.tools.ann_bench`).

Timings are wall seconds, best of ``repeat`` runs (after one warm-up run).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab.retrieval import ann
from recsys_lab.evaluation import ranking as evaluation
from recsys_lab.models import lightfm as models
from recsys_lab.retrieval import topk
from recsys_lab.config import Config

__all__ = ["best_of", "run", "topk_vs_gemm", "bare_gemm_seconds", "run_foldin"]


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
    method = cfg.ann.method if cfg.ann.method in ann.METHODS else "hnsw"  # auto/exact: the default index
    opts = {"method": method, "n_neighbors": cfg.ann.n_neighbors, "epsilon": cfg.ann.epsilon,
            "head_size": cfg.ann.head_size or None, "seed": cfg.model.seed, "target_recall": cfg.ann.target_recall}
    index = ann.MipsIndex(i, queries=u, **opts)
    echo(f"MIPS index ({method}, {index.head_size} of {index.n_items} items exact): numba compile "
         f"{index.compile_seconds:.1f} s (once per process), "
         f"build {index.build_seconds * 1e3:.0f} ms; total {time.perf_counter() - t0:.1f} s")
    out.update({"ann.compile_s": index.compile_seconds, "ann.build_s": index.build_seconds})
    cases = [("ann.small", "ML-100k items", i, u, index)]
    if large_items:
        items_l, queries_l = _large(large_items, large_queries, u.shape[1], cfg.model.seed)
        t0 = time.perf_counter()
        index_l = ann.MipsIndex(items_l, queries=queries_l, **opts)
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


def _large(n_items: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A clustered synthetic catalogue (200 taste clusters, like learned embeddings, unlike i.i.d. Gaussians
    on which every graph index degrades to brute force) with spread-out norms."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(200, dim)).astype(np.float32)
    items = centers[rng.integers(0, 200, n_items)] + 0.35 * rng.normal(size=(n_items, dim)).astype(np.float32)
    items *= rng.lognormal(0, 0.3, (n_items, 1)).astype(np.float32)
    queries = centers[rng.integers(0, 200, n_queries)] + 0.35 * rng.normal(size=(n_queries, dim)).astype(np.float32)
    return items.astype(np.float32), queries.astype(np.float32)


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
