"""Every user's top-k of a saved run, by Ray Data: ``map_batches`` over blocks of users, the run loaded once per
worker (:class:`TopKScorer`, a class-based UDF), selection by the one exact top-k
(:func:`recsys_lab.retrieval.topk.top_k`), the result streamed into one Parquet file.

The file has one row per user: ``user_id`` (the run's external id), ``item_id`` (list of the k external item ids,
best first) and ``score`` (list of float32). Items seen in training are excluded, as when serving; where fewer than
k remain the tail scores -inf (see :func:`recsys_lab.retrieval.topk.top_k`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recsys_lab.errors import ConfigError, RunError
from recsys_lab.scale.cluster import RayOptions, connect
from recsys_lab.store.artifacts import SavedRun, load_run

__all__ = ["ScoreResult", "TopKScorer", "Verification", "score_users", "topk_table", "batch_rows", "score_local",
           "verify_sample"]

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


def batch_rows(n_items: int, *, cells: int = 1 << 28) -> int:
    """Users per batch: about ``cells / n_items`` (2,684 users at 100k items by default).

    A batch is one :func:`recsys_lab.retrieval.topk.top_k` call, which scores it in blocks of 64 MiB whatever its
    size, so the batch's memory is its k-lists; a larger batch amortises each call's set-up (the catalogue's
    permuted copy, the block buffers' first touch: ~25 % of a 335-user batch at 100k items, measured).

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


def topk_table(run: SavedRun, users: np.ndarray, k: int, *, exclude_seen: bool = True,
               threads: int | None = None) -> Any:
    """The top-k of ``users`` (internal indices) as a pyarrow table ``user_id``, ``item_id``, ``score``.

    Parameters
    ----------
    run : SavedRun
    users : ndarray of int64
        Internal user indices.
    k : int
    exclude_seen : bool
        Exclude the run's training interactions (``artifacts/split.npz``; nothing when the run has none).
    threads : int, optional
        Top-k threads (default: this machine's CPUs).

    Returns
    -------
    pyarrow.Table
    """
    import pyarrow as pa

    from recsys_lab.retrieval.topk import top_k

    split = run.split() if exclude_seen else None
    items, scores = top_k(run.user_vecs, run.item_vecs, k, users=users,
                          exclude=None if split is None else split.seen, threads=threads)
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
        # threads: this worker's CPUs, not the machine's (the worker is its own process)
        self.run, self.k, self.exclude_seen, self.threads = load_run(path), k, exclude_seen, threads
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
        return topk_table(self.run, np.asarray(batch["data"], dtype=np.int64), self.k, exclude_seen=self.exclude_seen,
                          threads=self.threads)


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
    ctx = ray.data.DataContext.get_current()  # Ray Data's progress lines only with --verbose
    ctx.enable_progress_bars = ctx.print_on_execution_start = log.isEnabledFor(logging.INFO)
    t0 = time.perf_counter()
    # blocks made in the driver (no read tasks competing with the scoring actors for CPUs)
    ds = ray.data.from_numpy(np.array_split(np.arange(n_users, dtype=np.int64), max(1, -(-n_users // size))))
    ds = ds.map_batches(
        TopKScorer, fn_constructor_kwargs={"path": str(run.path.resolve()), "k": k, "exclude_seen": exclude_seen},
        batch_size=size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
    rows = _write_parquet(out, (t for t in ds.iter_batches(batch_format="pyarrow", batch_size=None)),
                          topk_table(run, np.zeros(0, np.int64), k, exclude_seen=False).schema)
    seconds = time.perf_counter() - t0
    log.info("scored %d users in %.1f s with %d workers", rows, seconds, workers)
    return ScoreResult(path=out, rows=rows, seconds=seconds, startup_seconds=startup, workers=workers)


def _write_parquet(out: Path, tables: Iterator[Any], empty_schema: Any) -> int:
    """Stream ``tables`` into one Parquet file (a temporary name, then renamed); the rows written."""
    import pyarrow.parquet as pq

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, rows, writer = out.with_name(f".{out.name}.{os.getpid()}.tmp"), 0, None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
            rows += table.num_rows
        if writer is None:  # no users
            writer = pq.ParquetWriter(tmp, empty_schema)
        writer.close()
        os.replace(tmp, out)
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
    return rows


def score_local(run_dir: str | Path, out: str | Path, *, k: int = 100, batch_size: int | None = None,
                exclude_seen: bool = True, threads: int | None = None) -> ScoreResult:
    """The same file as :func:`score_users`, in this process without Ray (the reference the Ray path is timed
    against; on one machine it is the faster path).

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    out : str or Path
        The Parquet file.
    k : int
        Items per user.
    batch_size : int, optional
        Users per top-k call and Parquet row group (default: 4 x :func:`batch_rows`).
    exclude_seen : bool
        Exclude each user's training interactions.
    threads : int, optional
        Top-k threads (default: this machine's CPUs).

    Returns
    -------
    ScoreResult
        ``workers`` is the thread count, ``startup_seconds`` 0.

    Raises
    ------
    ConfigError
        ``k`` below 1.
    RunError
        The run's vectors cannot be read.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", parameter="k")
    run = load_run(run_dir)
    n_users, out = len(run.user_ids), Path(out)
    size = max(1, batch_size or 4 * batch_rows(len(run.item_ids)))
    t0 = time.perf_counter()
    tables = (topk_table(run, np.arange(lo, min(lo + size, n_users), dtype=np.int64), k, exclude_seen=exclude_seen,
                         threads=threads) for lo in range(0, n_users, size))
    rows = _write_parquet(out, tables, topk_table(run, np.zeros(0, np.int64), k, exclude_seen=False).schema)
    seconds = time.perf_counter() - t0
    return ScoreResult(path=out, rows=rows, seconds=seconds, startup_seconds=0.0,
                       workers=threads or os.cpu_count() or 1)


@dataclass(frozen=True)
class Verification:
    """A top-k file checked against the single-process exact top-k on a seeded sample of users.

    Attributes
    ----------
    users : int
        Users sampled.
    identical : int
        Sampled users whose list in the file has the exact top-k's item ids in the same order.
    equal : int
        Sampled users whose list is *an* exact top-k: identical, or different only among items whose scores tie
        (which of several tied items are kept, and their order, is unspecified). Checked on scores recomputed from
        the vectors: the file's scores are the items' true scores and equal the exact top-k's position by position,
        to float32 tolerance (``1e-5 * |u| * max |v|``), with k distinct items and no training item at a finite
        score.
    missing : int
        Sampled users absent from the file (counted as not equal).
    rows : int
        Rows of the file.
    max_score_diff : float
        Largest ``|file score - exact score|`` over finite positions.
    seconds : float
        Wall time of the exact top-k of the sample.
    k : int
    """

    users: int
    identical: int
    equal: int
    missing: int
    rows: int
    max_score_diff: float
    seconds: float
    k: int

    @property
    def share_identical(self) -> float:
        """``identical / users``."""
        return self.identical / self.users if self.users else 1.0

    @property
    def share_equal(self) -> float:
        """``equal / users``."""
        return self.equal / self.users if self.users else 1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values (for ``*.verify.json``).

        Returns
        -------
        dict
        """
        return {**dataclasses.asdict(self), "share_identical": self.share_identical, "share_equal": self.share_equal}


def verify_sample(run_dir: str | Path, path: str | Path, n: int, *, seed: int = 0, exclude_seen: bool = True,
                  threads: int | None = None) -> Verification:
    """Check the top-k file ``path`` of the run in ``run_dir`` against the exact top-k of ``n`` sampled users.

    Parameters
    ----------
    run_dir : str or Path
        The run folder the file was scored from.
    path : str or Path
        The Parquet file of :func:`score_users` (``user_id``, ``item_id``, ``score``).
    n : int
        Users to sample (all when the run has fewer).
    seed : int
        Seed of the sample.
    exclude_seen : bool
        The file was scored with training items excluded.
    threads : int, optional
        Threads of the exact top-k.

    Returns
    -------
    Verification

    Raises
    ------
    ConfigError
        ``n`` below 1.
    RunError
        The run or the file cannot be read, or the file's lists are not all of one length.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from recsys_lab.retrieval.topk import top_k

    if n < 1:
        raise ConfigError(f"the sample must hold >= 1 user, got {n}", parameter="verify")
    run, path = load_run(run_dir), Path(path)
    n_users = len(run.user_ids)
    sample = np.sort(np.random.default_rng(seed).choice(n_users, min(n, n_users), replace=False))
    try:  # only the sampled users' rows are kept while the file is read (the file itself may not fit in memory)
        rows = pq.ParquetFile(path).metadata.num_rows
        table = pq.read_table(path, filters=pc.field("user_id").isin(pa.array(run.user_ids[sample])))
    except (OSError, KeyError, ValueError, pa.ArrowInvalid) as exc:
        raise RunError(f"{path}: cannot read the top-k file ({exc})") from exc
    lengths = np.unique(pc.list_value_length(table["item_id"]).to_numpy(zero_copy_only=False))
    if len(lengths) > 1:
        raise RunError(f"{path}: lists of different lengths {lengths.tolist()}")
    if table.num_rows == 0:
        return Verification(users=len(sample), identical=0, equal=0, missing=len(sample), rows=rows,
                            max_score_diff=0.0, seconds=0.0, k=0)
    k = int(lengths[0])
    got_users = run.users.to_index(table["user_id"].to_numpy(zero_copy_only=False))
    present, first = np.unique(got_users, return_index=True)  # a user written twice counts once
    got_items = run.items.to_index(pc.list_flatten(table["item_id"]).to_numpy(zero_copy_only=False)
                                   ).reshape(-1, k)[first]
    got_scores = pc.list_flatten(table["score"]).to_numpy(zero_copy_only=False).reshape(-1, k)[first]
    seen = run.split().seen if exclude_seen and run.split() is not None else None
    t0 = time.perf_counter()
    items, scores = top_k(run.user_vecs, run.item_vecs, k, users=present, exclude=seen, threads=threads)
    seconds = time.perf_counter() - t0
    identical = (got_items == items).all(axis=1)
    # the file's items' true scores (-inf where excluded), and the tolerance of a float32 dot product
    true = np.einsum("ud,ukd->uk", run.user_vecs[present], run.item_vecs[got_items]).astype(np.float32)
    if seen is not None:
        sub = seen[present]
        keys = np.repeat(np.arange(len(present)), np.diff(sub.indptr)) * len(run.item_ids) + sub.indices
        true[np.isin(np.arange(len(present))[:, None] * len(run.item_ids) + got_items, keys)] = -np.inf
    tol = (1e-5 * np.linalg.norm(run.user_vecs[present], axis=1)
           * float(np.linalg.norm(run.item_vecs, axis=1).max(initial=0.0)))[:, None] + 1e-7

    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return (a == b) | (np.abs(a - b) <= tol)

    distinct = (np.diff(np.sort(got_items, axis=1), axis=1) != 0).all(axis=1)
    equal = identical | (distinct & close(got_scores, true).all(axis=1) & close(got_scores, scores).all(axis=1))
    finite = np.isfinite(got_scores) & np.isfinite(scores)
    diff = float(np.abs(got_scores - scores)[finite].max(initial=0.0))
    return Verification(users=len(sample), identical=int(identical.sum()), equal=int(equal.sum()),
                        missing=len(sample) - len(present), rows=rows, max_score_diff=diff, seconds=seconds, k=k)

