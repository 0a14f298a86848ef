"""Every user's top-k of a saved run, by Ray Data: ``map_batches`` over blocks of users, the run loaded once per
worker (:class:`TopKScorer`, a class-based UDF), selection by the one exact top-k
(:func:`recsys_lab.retrieval.topk.top_k`), the result streamed into one Parquet file.

The file has one row per user: ``user_id`` (the run's external id), ``item_id`` (list of the k external item ids,
best first) and ``score`` (list of float32). Items seen in training are excluded, as when serving; where fewer than
k remain the tail scores -inf (see :func:`recsys_lab.retrieval.topk.top_k`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys_lab.errors import ConfigError
from recsys_lab.scale.cluster import RayOptions, connect
from recsys_lab.store.artifacts import SavedRun, load_run

__all__ = ["ScoreResult", "TopKScorer", "score_users", "topk_table", "batch_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_users` wrote and how long it took.

    Attributes
    ----------
    path : Path
        The Parquet file.
    rows : int
        Users written.
    seconds : float
        Wall time of the scoring (start-up excluded).
    startup_seconds : float
        Ray's start-up (0.0 when already connected).
    workers : int
    """

    path: Path
    rows: int
    seconds: float
    startup_seconds: float
    workers: int

    @property
    def rows_per_second(self) -> float:
        """Users scored per second of :attr:`seconds`."""
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def batch_rows(n_items: int, *, cells: int = 1 << 25) -> int:
    """Users per batch so that one batch's scores are about ``cells`` float32 (128 MiB by default).

    Parameters
    ----------
    n_items : int
        Catalogue size.
    cells : int
        Score cells per batch.

    Returns
    -------
    int
        At least 64.
    """
    return max(64, cells // max(n_items, 1))


def topk_table(run: SavedRun, users: np.ndarray, k: int, *, exclude_seen: bool = True) -> Any:
    """The top-k of ``users`` (internal indices) as a pyarrow table ``user_id``, ``item_id``, ``score``.

    Parameters
    ----------
    run : SavedRun
    users : ndarray of int64
        Internal user indices.
    k : int
    exclude_seen : bool
        Exclude the run's training interactions (``artifacts/split.npz``; nothing when the run has none).

    Returns
    -------
    pyarrow.Table
    """
    import pyarrow as pa

    from recsys_lab.retrieval.topk import top_k

    split = run.split() if exclude_seen else None
    items, scores = top_k(run.user_vecs, run.item_vecs, k, users=users,
                          exclude=None if split is None else split.seen)
    width = items.shape[1]
    offsets = pa.array(np.arange(0, len(users) * width + 1, width, dtype=np.int32))
    return pa.table({"user_id": pa.array(run.user_ids[users]),
                     "item_id": pa.ListArray.from_arrays(offsets, pa.array(run.item_ids[items.ravel()])),
                     "score": pa.ListArray.from_arrays(offsets, pa.array(scores.ravel(), type=pa.float32()))})


class TopKScorer:
    """A Ray Data UDF: the run is loaded once when the worker starts, then each batch of user indices is scored.

    Parameters
    ----------
    path : str
        The run folder.
    k : int
    exclude_seen : bool
    threads : int
        Top-k threads in this worker (its CPUs).
    """

    def __init__(self, path: str, k: int, exclude_seen: bool = True, threads: int = 1) -> None:
        from recsys_lab.retrieval import topk

        topk._THREADS = threads  # this worker's CPUs, not the machine's (the worker is its own process)
        self.run, self.k, self.exclude_seen = load_run(path), k, exclude_seen
        if exclude_seen:
            self.run.split()  # read once, now, not in the first batch

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        """Score one batch (column ``data``: internal user indices).

        Parameters
        ----------
        batch : dict of str to ndarray

        Returns
        -------
        pyarrow.Table
        """
        return topk_table(self.run, np.asarray(batch["data"], dtype=np.int64), self.k, exclude_seen=self.exclude_seen)


def score_users(run_dir: str | Path, out: str | Path, *, k: int = 100, workers: int | None = None,
                batch_size: int | None = None, exclude_seen: bool = True,
                options: RayOptions | None = None) -> ScoreResult:
    """Write every user's top-k of the run in ``run_dir`` to ``out`` (Parquet), on Ray Data.

    Parameters
    ----------
    run_dir : str or Path
        The run folder (resolve ``production`` etc. with :func:`recsys_lab.runs.registry.resolve`).
    out : str or Path
        The Parquet file (written to a temporary name, then renamed).
    k : int
        Items per user.
    workers : int, optional
        Scoring workers (one CPU each); default: Ray's CPUs.
    batch_size : int, optional
        Users per batch (default :func:`batch_rows`).
    exclude_seen : bool
        Exclude each user's training interactions.
    options : RayOptions, optional
        Where Ray runs (default: local with this machine's CPUs, or ``$RAY_ADDRESS``).

    Returns
    -------
    ScoreResult

    Raises
    ------
    ConfigError
        ``k`` or ``workers`` below 1.
    RunError
        The run's vectors cannot be read (before Ray starts), or Ray did not start (``RayStartError``).
    """
    import pyarrow.parquet as pq

    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", parameter="k")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}", parameter="workers")
    run = load_run(run_dir)  # fails here, before Ray starts, when the run is unreadable
    n_users, out = len(run.user_ids), Path(out)
    startup = connect(options)
    import ray

    workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = batch_size or batch_rows(len(run.item_ids))
    size = max(1, min(size, -(-n_users // workers)))  # at least one batch per worker
    t0 = time.perf_counter()
    # blocks made in the driver (no read tasks competing with the scoring actors for CPUs)
    ds = ray.data.from_numpy(np.array_split(np.arange(n_users, dtype=np.int64), max(1, -(-n_users // size))))
    ds = ds.map_batches(
        TopKScorer, fn_constructor_kwargs={"path": str(run.path.resolve()), "k": k, "exclude_seen": exclude_seen},
        batch_size=size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, rows, writer = out.with_name(f".{out.name}.{os.getpid()}.tmp"), 0, None
    try:
        for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # no users
            writer = pq.ParquetWriter(tmp, topk_table(run, np.zeros(0, np.int64), k, exclude_seen=False).schema)
        writer.close()
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - t0
    log.info("scored %d users in %.1f s with %d workers", rows, seconds, workers)
    return ScoreResult(path=out, rows=rows, seconds=seconds, startup_seconds=startup, workers=workers)
