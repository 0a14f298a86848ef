"""Serving from a run's artifacts: a user's history and top-k recommendations, one run or two side by side.

Vectors come from the run folder (``artifacts/id_maps.npz``, ``artifacts/embeddings.npz``); the user's history
and item titles from the run's warehouse snapshot (opened read-only). Loaded runs are cached per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .errors import RunError
from .evaluation import top_k
from .registry import resolve
from .run_folder import RunFolder, read_manifest
from .warehouse import open_snapshot

__all__ = ["recommend", "user_history", "compare_recommendations"]


@dataclass
class _RunModel:
    run_id: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_vecs: np.ndarray
    item_vecs: np.ndarray
    snapshot_path: Path
    cutoff: str


_CACHE: dict[Path, _RunModel] = {}


def _load_run_model(run_dir: Path) -> _RunModel:
    if run_dir in _CACHE:
        return _CACHE[run_dir]
    folder = RunFolder(run_dir)
    if not folder.embeddings.is_file():
        raise RunError(f"run {run_dir.name} has no artifacts/embeddings.npz (did it succeed?)")
    ids, emb = np.load(folder.id_maps), np.load(folder.embeddings)
    manifest = read_manifest(run_dir)
    data = manifest.get("data") or {}
    wh = Path(manifest["config"]["data"]["warehouse"])
    model = _RunModel(run_id=run_dir.name, user_ids=ids["user_ids"], item_ids=ids["item_ids"],
                      user_vecs=emb["user_vecs"], item_vecs=emb["item_vecs"],
                      snapshot_path=wh / "snapshots" / f"{data.get('snapshot')}.duckdb",
                      cutoff=(data.get("split") or {}).get("cutoff"))
    _CACHE[run_dir] = model
    return model


def _user_key(m: _RunModel, user_id: int | str) -> int | str:
    """The user id in the run's id type (integer or text)."""
    if m.user_ids.dtype.kind in "iu":
        try:
            return int(user_id)
        except (TypeError, ValueError):
            raise RunError(f"run {m.run_id}: user ids are integers, got {user_id!r}") from None
    return str(user_id)


def _snapshot_sql(path: Path, query: str, params: list) -> pl.DataFrame:
    if not path.is_file():
        raise RunError(f"{path}: the run's data snapshot is gone from the warehouse")
    return open_snapshot(path.stem, path.parent.parent).sql(query, params)


def user_history(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", n: int = 10) -> pl.DataFrame:
    """The user's last ``n`` interactions before the run's training cut-off.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id (as in the data).
    run : str
        Run reference (``latest``, ``production``, a run id or a unique prefix).
    n : int
        How many interactions.

    Returns
    -------
    pl.DataFrame
        ``ts, item_id, title, weight``, newest first, at most ``n`` rows.

    Raises
    ------
    RunError
        Unknown run, missing artifacts or snapshot, or a user id of the wrong type.
    """
    m = _load_run_model(resolve(runs_dir, run))
    user_id = _user_key(m, user_id)
    return _snapshot_sql(m.snapshot_path,
                         "SELECT i.ts, i.item_id, it.title, i.weight FROM interactions i JOIN items it USING (item_id) "
                         "WHERE i.user_id = ? AND i.ts < ?::TIMESTAMPTZ ORDER BY i.ts DESC LIMIT ?",
                         [user_id, m.cutoff, int(n)])


def recommend(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", k: int = 10) -> pl.DataFrame:
    """Top-k items for one user from a run's folded embeddings (exact), items seen before its cut-off excluded.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id (as in the data).
    run : str
        Run reference (``latest``, ``production``, a run id or a unique prefix).
    k : int
        How many items.

    Returns
    -------
    pl.DataFrame
        ``rank (1-based), item_id, title, score`` with k rows.

    Raises
    ------
    RunError
        Unknown run or user, or missing artifacts.
    """
    m = _load_run_model(resolve(runs_dir, run))
    user_id = _user_key(m, user_id)
    hit = np.flatnonzero(m.user_ids == user_id)
    if len(hit) == 0:
        raise RunError(f"run {m.run_id}: unknown user_id {user_id!r}")
    seen = _snapshot_sql(m.snapshot_path, "SELECT DISTINCT item_id FROM interactions WHERE user_id = ? "
                         "AND ts < ?::TIMESTAMPTZ", [user_id, m.cutoff])["item_id"].to_numpy()
    import scipy.sparse as sp

    cols = np.searchsorted(m.item_ids, seen)
    exclude = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)),
                            shape=(1, len(m.item_ids)))
    items, scores = top_k(m.user_vecs[hit], m.item_vecs, k, exclude=exclude)
    ids = m.item_ids[items[0]]
    titles = _snapshot_sql(m.snapshot_path, "SELECT item_id, title FROM items WHERE item_id IN (SELECT unnest(?))",
                           [ids.tolist()])
    out = pl.DataFrame({"rank": np.arange(1, len(ids) + 1), "item_id": ids, "score": scores[0]})
    return out.join(titles, on="item_id", how="left").select("rank", "item_id", "title", "score")


def compare_recommendations(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", vs: str = "production",
                            k: int = 10) -> pl.DataFrame:
    """Two runs' top-k for one user side by side with rank changes.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id.
    run, vs : str
        Run references: ``a`` and ``b`` of the result.
    k : int
        Length of each list.

    Returns
    -------
    pl.DataFrame
        One row per item in either list: ``rank_a, rank_b, movement, item_id, title, score_a, score_b``
        (``a`` is ``run``, ``b`` is ``vs``; a rank is null when the item is not in that top-k).
        ``movement`` says how the item moved from ``vs`` to ``run``: ``up N``, ``down N``, ``=``, ``new``
        (only in ``run``) or ``dropped`` (only in ``vs``). Sorted by ``rank_a`` then ``rank_b``.

    Raises
    ------
    RunError
        See :func:`recommend`.
    """
    ra, rb = recommend(runs_dir, user_id, run=run, k=k), recommend(runs_dir, user_id, run=vs, k=k)
    titles = pl.concat([ra.select("item_id", "title"), rb.select("item_id", "title")]).unique("item_id")
    both = (ra.drop("title").rename({"rank": "rank_a", "score": "score_a"})
            .join(rb.drop("title").rename({"rank": "rank_b", "score": "score_b"}), on="item_id", how="full",
                  coalesce=True)
            .join(titles, on="item_id", how="left"))
    movement = (pl.when(pl.col("rank_b").is_null()).then(pl.lit("new"))
                .when(pl.col("rank_a").is_null()).then(pl.lit("dropped"))
                .when(pl.col("rank_a") < pl.col("rank_b")).then(pl.format("up {}", pl.col("rank_b") - pl.col("rank_a")))
                .when(pl.col("rank_a") > pl.col("rank_b")).then(pl.format("down {}", pl.col("rank_a") - pl.col("rank_b")))
                .otherwise(pl.lit("=")))
    return (both.with_columns(movement.alias("movement"))
            .sort(["rank_a", "rank_b"], nulls_last=True)
            .select("rank_a", "rank_b", "movement", "item_id", "title", "score_a", "score_b"))
