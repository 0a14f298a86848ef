"""``recsys-lab bench --serve``: latency and throughput of ``GET /recommendations`` over HTTP against the in-process
call, measured in the same run.

For each catalogue (MovieLens 100k, and a :mod:`recsys_lab.data.synthetic` log of ``large_items`` items) a run is
written into a temporary folder the way a retrain writes one (warehouse snapshot, :func:`save_artifacts` of a
1-epoch LightFM, 64 components), promoted, and served by ``recsys-lab serve`` in a child process on a free
127.0.0.1 port. A bounded load loop (``seconds`` per level, threads with one keep-alive ``http.client``
connection each: lighter than httpx, and the clients share the two cores with the server) asks for the
top-10 of random trained users with 1, 8 and 32 concurrent clients; the in-process baseline is the same call the
endpoint makes (:func:`recsys_lab.serving.recommend.recommend` on the preloaded run), one at a time. The ratio of
the two p50s is the HTTP cost. Client and server share the machine's cores: the load average is printed with each
figure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config, FeatureConfig, ModelConfig
from recsys_lab.data.warehouse import ingest
from recsys_lab.features import build_dataset
from recsys_lab.models import lightfm
from recsys_lab.store.artifacts import save_artifacts
from recsys_lab.store.folder import PRODUCTION, RunFolder

__all__ = ["write_served_run", "load_loop", "serve_benchmark"]


def write_served_run(runs_dir: Path, warehouse: Path, interactions: pl.DataFrame, users: pl.DataFrame,
                     items: pl.DataFrame, *, components: int = 64, run_id: str = "20000101T000000Z-bench0") -> str:
    """A succeeded, promoted run on the given tables: snapshot, 80 % time cut-off, 1-epoch LightFM, artifacts.

    Parameters
    ----------
    runs_dir, warehouse : Path
        Where the run folder and the snapshot go.
    interactions, users, items : pl.DataFrame
        ``user_id, item_id, weight, ts``; ``user_id``; ``item_id, title``.
    components : int
        LightFM components (the vectors have ``components + 1`` columns).
    run_id : str

    Returns
    -------
    str
        The run id (written to ``runs/PRODUCTION``).
    """
    snap = ingest({"interactions": interactions, "users": users, "items": items}, warehouse, source="bench")
    ds = build_dataset(interactions, users, items, FeatureConfig(item=()))
    ts = ds.interactions["ts"].sort()
    cutoff = ts[int(0.8 * (len(ts) - 1))]
    train = ds.interactions.filter(pl.col("ts") < cutoff)
    u, i = train["user_idx"].to_numpy(), train["item_idx"].to_numpy()
    seen = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=ds.shape)
    seen.sum_duplicates()
    seen.data[:] = 1.0
    fit = lightfm.fit(seen, ds.user_features.matrix, ds.item_features.matrix,
                      ModelConfig(no_components=components, epochs=1, num_threads=2, patience=0))
    uv, iv = lightfm.embeddings(fit.model, ds.user_features.matrix, ds.item_features.matrix)
    config = Config().replace({"data.warehouse": str(warehouse), "model.no_components": components})
    folder = RunFolder.create(runs_dir, {"status": "succeeded", "config": config.to_dict(),
                                         "data": {"snapshot": snap.id, "split": {"cutoff": cutoff.isoformat()}}},
                              run_id=run_id)
    save_artifacts(folder, users=ds.users, items=ds.items, user_vecs=uv, item_vecs=iv, seen=seen, positives=seen,
                   user_tokens=ds.user_features.tokens, item_tokens=ds.item_features.tokens, model=fit.model)
    atomic_write_json(folder.metrics, {"ndcg@10": 0.0})
    (runs_dir / PRODUCTION).write_text(run_id + "\n")
    return run_id


def _percentiles(seconds: list[float]) -> tuple[float, float]:
    arr = np.asarray(seconds) * 1e3
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def load_loop(url: str, users: np.ndarray, clients: int, seconds: float, *, k: int = 10) -> dict[str, float]:
    """``clients`` threads asking ``GET /recommendations/{user}?k=`` of random ``users`` for ``seconds``.

    Parameters
    ----------
    url : str
        The service's base URL.
    users : ndarray
        User ids to draw from.
    clients : int
        Concurrent clients (one thread and one connection each).
    seconds : float
        How long the loop runs (it stops by itself).
    k : int

    Returns
    -------
    dict
        ``p50_ms``, ``p99_ms``, ``rps``, ``requests``, ``failed``.
    """
    from http.client import HTTPConnection, HTTPException
    from urllib.parse import urlsplit

    host = urlsplit(url)
    lat: list[float] = []
    failed = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        mine, bad = [], 0
        conn = HTTPConnection(host.hostname, host.port, timeout=30)  # keep-alive; lighter than httpx on 2 cores
        while time.perf_counter() < stop:
            user = users[rng.integers(len(users))]
            t0 = time.perf_counter()
            try:
                conn.request("GET", f"/recommendations/{user}?k={k}")
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, HTTPException):
                ok = False
                conn.close()
                conn = HTTPConnection(host.hostname, host.port, timeout=30)
            mine.append(time.perf_counter() - t0)
            bad += not ok
        conn.close()
        with lock:
            lat.extend(mine)
            failed[0] += bad

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(j,)) for j in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    p50, p99 = _percentiles(lat)
    return {"p50_ms": p50, "p99_ms": p99, "rps": len(lat) / wall, "requests": len(lat), "failed": failed[0]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bench_one(name: str, runs_dir: Path, run_id: str, clients: tuple[int, ...], seconds: float,
               echo: Callable[[str], None]) -> dict[str, float]:
    import httpx

    from recsys_lab.serving.live import load_for_serving
    from recsys_lab.serving.recommend import recommend

    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # as the service runs each request: one BLAS thread
    m = load_for_serving(runs_dir, run_id)
    trained = np.flatnonzero(m.positives.getnnz(axis=1) > 0)
    users = m.user_ids[trained]
    rng = np.random.default_rng(0)
    lat = []
    stop = time.perf_counter() + min(seconds, 5.0)
    while time.perf_counter() < stop or len(lat) < 20:
        t0 = time.perf_counter()
        recommend(runs_dir, users[rng.integers(len(users))].item(), run=run_id, k=10)
        lat.append(time.perf_counter() - t0)
    base50, base99 = _percentiles(lat)
    out = {f"{name}.inprocess.p50_ms": base50, f"{name}.inprocess.p99_ms": base99,
           f"{name}.inprocess.rps": len(lat) / sum(lat)}
    echo(f"{name}: {len(m.item_ids):,} items x {m.item_vecs.shape[1]} dims; in-process call p50 {base50:.1f} ms, "
         f"p99 {base99:.1f} ms ({len(lat)} calls, load {os.getloadavg()[0]:.1f})")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "recsys_lab.cli.main", "serve", "--runs-dir", str(runs_dir),
                             "--port", str(port), "-p", "serve.update_seconds", "3600"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"recsys-lab serve did not start (exit {proc.poll()})")
            time.sleep(0.3)
        load_loop(url, users, 2, 1.0)  # warm-up
        echo(f"{'clients':>9} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8} {'failed':>7} {'p50/in-process':>15} {'load':>6}")
        for n in clients:
            r = load_loop(url, users, n, seconds)
            for key, value in r.items():
                out[f"{name}.http.{n}.{key}"] = value
            out[f"{name}.http.{n}.ratio"] = r["p50_ms"] / base50
            echo(f"{n:>9} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['rps']:>8.0f} {r['failed']:>7} "
                 f"{r['p50_ms'] / base50:>14.1f}x {os.getloadavg()[0]:>6.1f}")
    finally:
        proc.terminate()
        proc.wait(15)
    return out


def serve_benchmark(config: Config, *, large_items: int = 100_000, seconds: float = 10.0,
                    clients: tuple[int, ...] = (1, 8, 32), echo: Callable[[str], None] = print) -> dict[str, float]:
    """HTTP vs in-process latency and throughput at MovieLens 100k and at ``large_items`` items.

    Parameters
    ----------
    config : Config
        Its ``data`` names the MovieLens source (``--data`` / ``RECSYS_LAB_DATA_DIR``).
    large_items : int
        Items of the synthetic catalogue (0 skips it; 5 interactions per item, users = items / 5).
    seconds : float
        Length of each load level.
    clients : tuple of int
        Concurrent clients per level.
    echo : callable

    Returns
    -------
    dict
        ``<catalogue>.inprocess.*`` and ``<catalogue>.http.<clients>.{p50_ms, p99_ms, rps, requests, failed,
        ratio}``.
    """
    from recsys_lab.data import synthetic
    from recsys_lab.data.movielens import load_movielens_100k

    out: dict[str, float] = {}
    echo(f"bench --serve: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="recsys-bench-serve-") as tmp:
        ml = load_movielens_100k(config.data.path)
        root = Path(tmp) / "ml100k"
        run_id = write_served_run(root / "runs", root / "warehouse", ml.interactions, ml.users,
                                  ml.items.select("item_id", "title"))
        out.update(_bench_one("ml100k", root / "runs", run_id, clients, seconds, echo))
        if large_items:
            log = synthetic.generate(max(1, large_items // 5), large_items, large_items * 5, seed=0)
            inter = log.interactions.with_columns(pl.col("weight").cast(pl.Float64))
            root = Path(tmp) / "large"
            run_id = write_served_run(root / "runs", root / "warehouse", inter,
                                      inter.select("user_id").unique().sort("user_id"), log.items.select("item_id", "title"))
            out.update(_bench_one(f"items{large_items}", root / "runs", run_id, clients, seconds, echo))
    return out
