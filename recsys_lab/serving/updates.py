"""Near-real-time updates of a run's user vectors by fold-in: write a new version, read one, list them.

Updates live in ``artifacts/updates/<UTC timestamp>/`` (:meth:`RunFolder.updates`): ``user_vecs.npz``
(``user_ids``, ``user_vecs``), ``interactions.parquet`` (every new interaction with a known item so far,
cumulative over versions: ``user_id, item_id, weight, ts``) and ``manifest.json``. Each version is complete
(cumulative), written to a temporary folder and renamed into place, so a reader sees a whole version or none; a
write that fails (disk full) raises :class:`WriteError` and leaves no version behind. Version folders get the mode
a plain ``mkdir`` gives (the umask honoured: ``0755`` under ``022``).
:func:`recsys_lab.serving.recommend.recommend` serves the latest version.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import secrets
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_bytes, atomic_write_json
from recsys_lab.data.files import load_files
from recsys_lab.data.sources import update_source
from recsys_lab.errors import DataError, DataFileError, RunError
from recsys_lab.models import foldin
from recsys_lab.runs.registry import resolve
from recsys_lab.serving.saved_run import UPDATE_WINDOW, ColdStartWarning, ServedRun, served_run, utc
from recsys_lab.store.artifacts import read_arrays, write_arrays
from recsys_lab.store.folder import RunFolder, read_json

__all__ = ["update", "updates", "Update", "load_version", "WriteError", "writing"]


class WriteError(RunError, OSError):
    """Writing a run's file failed (e.g. the disk is full); the file or version being written was not created.

    Also an ``OSError`` (with the cause's ``errno``), so the command line exits 1 as for any failed write.
    """


@contextmanager
def writing(path: str | Path, what: str) -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into a :class:`WriteError` naming ``path`` and the cause.

    Parameters
    ----------
    path : str or Path
        The file or folder being written.
    what : str
        What is written, for the message (e.g. ``"the update version"``).

    Yields
    ------
    None

    Raises
    ------
    WriteError
        ``"<path>: cannot write <what> (disk full: ...)"`` (``quota exceeded`` for EDQUOT).
    """
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        reason = {errno.ENOSPC: "disk full", errno.EDQUOT: "quota exceeded"}.get(exc.errno or -1)
        detail = exc.strerror or str(exc) or type(exc).__name__
        err = WriteError(f"{path}: cannot write {what} ({reason + ': ' if reason else ''}{detail})")
        err.errno = exc.errno  # (strerror and filename stay unset: they would replace the message)
        raise err from exc


@dataclass
class Update:
    """One update version: its user vectors and the cumulative new interactions.

    Attributes
    ----------
    name : str
        The version (folder name).
    user_ids : ndarray of shape (n,)
    user_vecs : ndarray of shape (n, d + 1), float32
    interactions : pl.DataFrame
        ``user_id, item_id, weight, ts`` (UTC), cumulative over versions.
    index : dict
        External user id -> row of ``user_vecs``.
    """

    name: str
    user_ids: np.ndarray
    user_vecs: np.ndarray
    interactions: pl.DataFrame
    index: dict = field(default_factory=dict)


def _versions(folder: RunFolder) -> list[Path]:
    """Complete update versions, oldest first (temporary folders and folders without a manifest ignored)."""
    if not folder.updates.is_dir():
        return []
    return sorted(p for p in folder.updates.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file())


def load_version(m: ServedRun, version: str | None) -> Update | None:
    """An update version of a served run (cached: a version folder never changes once renamed into place).

    Parameters
    ----------
    m : ServedRun
    version : str or None
        Version name, ``"latest"`` or None (no update).

    Returns
    -------
    Update or None
        None for ``version=None`` or ``"latest"`` without any version.

    Raises
    ------
    RunError
        No such version, or a damaged version file (named).
    """
    if version is None:
        return None
    versions = _versions(RunFolder(m.path))
    if version == "latest":
        if not versions:
            return None
        path = versions[-1]
    else:
        path = next((p for p in versions if p.name == version), None)
        if path is None:
            raise RunError(f"run {m.run_id}: no update version {version!r} "
                           f"(have: {', '.join(p.name for p in versions) or 'none'})")
    if path in _UPDATES:
        return _UPDATES[path]
    vecs = read_arrays(path / "user_vecs.npz", ("user_ids", "user_vecs"))
    try:
        inter = utc(pl.read_parquet(path / "interactions.parquet"))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise RunError(f"{path / 'interactions.parquet'}: cannot read ({type(exc).__name__}: "
                       f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    upd = Update(name=path.name, user_ids=vecs["user_ids"], user_vecs=vecs["user_vecs"], interactions=inter)
    upd.index = {(u.item() if hasattr(u, "item") else u): j for j, u in enumerate(upd.user_ids)}
    _UPDATES[path] = upd  # a version folder never changes once renamed into place
    return upd


_UPDATES: dict[Path, Update] = {}


def updates(runs_dir: str | Path, *, run: str = "production") -> pl.DataFrame:
    """The update versions of a run, oldest first: ``version, rows_read, users_updated, new_users,
    unknown_items_skipped`` (from each ``manifest.json``).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        Run id, unique prefix, ``latest`` or ``production`` (default).

    Returns
    -------
    pl.DataFrame
        One row per complete version under ``updates/`` (``version`` Utf8, the counts Int64, null when a
        manifest lacks them); empty when the run has no update.

    Raises
    ------
    RunError
        Unknown run, or a version's manifest that is not valid JSON.
    """
    folder = RunFolder(resolve(runs_dir, run))
    rows = []
    for p in _versions(folder):
        man = read_json(p / "manifest.json")
        rows.append({"version": p.name, **{key: man.get(key) for key in
                                           ("rows_read", "users_updated", "new_users", "unknown_items_skipped")}})
    return pl.DataFrame(rows, schema={"version": pl.Utf8, "rows_read": pl.Int64, "users_updated": pl.Int64,
                                      "new_users": pl.Int64, "unknown_items_skipped": pl.Int64})


def _read_update_file(m: ServedRun, path: Path) -> pl.DataFrame:
    """The new interactions as ``user_id, item_id, weight (raw), ts (UTC)``, ids in the run's id types.

    MovieLens runs read the ``u.data`` fields with a header: ``user_id,item_id,rating,timestamp`` (epoch
    seconds); runs on files read with their own column mapping.
    """
    cfg, weight_range = update_source(m.data_config, path)
    inter = load_files(cfg).interactions
    csv_line = 2 if path.suffix.lower() in (".csv", ".tsv", ".txt") else 1  # header line + 1-based
    for col, raw in (("user_id", cfg.user_col), ("item_id", cfg.item_col), ("weight", cfg.weight_col or "weight"),
                     ("ts", cfg.time_col)):
        nulls = np.flatnonzero(inter[col].is_null().to_numpy())
        if len(nulls):
            raise DataFileError(str(path), f"{len(nulls)} empty or unparsable value(s) in {raw!r}",
                                line=int(nulls[0]) + csv_line, column=raw)
    w = inter["weight"].to_numpy()
    lo, hi = (weight_range[0], weight_range[-1]) if weight_range else (0.0, np.inf)
    bad = np.flatnonzero(~np.isfinite(w) | (w < lo) | (w > hi))
    if len(bad):
        raise DataFileError(str(path), f"weight {w[bad[0]]} outside [{lo}, {hi}] ({len(bad)} row(s))",
                            line=int(bad[0]) + csv_line, column=cfg.weight_col)
    for col, ids, raw in (("user_id", m.user_ids, cfg.user_col), ("item_id", m.item_ids, cfg.item_col)):
        target = pl.Int64 if ids.dtype.kind in "iu" else pl.Utf8
        cast = inter[col].cast(target, strict=False)
        lost = cast.is_null()
        if target == pl.Int64 and inter[col].dtype.is_float():  # 13.7 must not become id 13
            lost = lost | (cast.cast(pl.Float64) != inter[col]).fill_null(True)
        bad = np.flatnonzero(lost.to_numpy())
        if len(bad):
            raise DataFileError(str(path), f"id {inter[col][int(bad[0])]!r} is not of the run's id type "
                                f"({'integer' if target == pl.Int64 else 'text'})", line=int(bad[0]) + csv_line,
                                column=raw)
        inter = inter.with_columns(cast.alias(col))
    return utc(inter.select("user_id", "item_id", "weight", "ts"))


def update(runs_dir: str | Path, interactions: str | Path, *, run: str = "production",
           window: int = UPDATE_WINDOW) -> dict:
    """Fold new interactions into the user vectors of a run, without retraining (near-real-time update).

    Every user the file touches, known to the run or new, is folded in (:class:`recsys_lab.models.foldin.FoldIn`,
    default method) from their last ``window`` positives: the run's snapshot, earlier updates and this file.
    Items and the model are unchanged. A new complete version is written to
    ``artifacts/updates/<UTC timestamp>/`` atomically (temporary folder renamed into place, under a lock);
    :func:`recommend` then serves it.

    Parameters
    ----------
    runs_dir : str or Path
    interactions : str or Path
        CSV or Parquet with the run's column mapping; for MovieLens runs a CSV with header
        ``user_id,item_id,rating,timestamp`` (the fields of ``u.data``, epoch seconds).
    run : str
        Run reference (default ``production``).
    window : int
        Most recent positives folded in per user (default :data:`UPDATE_WINDOW`).

    Returns
    -------
    dict
        The version's manifest: ``version``, ``run_id``, ``source``, ``rows_read``, ``rows_used``,
        ``unknown_items_skipped`` (rows) and ``unknown_item_ids`` (up to 20), ``users_touched``,
        ``users_updated`` (with at least one positive), ``new_users`` (unknown to the run and earlier updates),
        ``users_in_version``, ``previous``, ``window``, ``method``, ``created_at``.

    Raises
    ------
    DataFileError
        Missing, unreadable or malformed file (names file, line, column); nothing is written.
    RunError
        Unknown run or missing artifacts.
    WriteError
        Writing the version failed (e.g. the disk is full; names the version folder): no version was added.

    Warns
    -----
    ColdStartWarning
        Rows with unknown items were skipped (counted in the manifest).
    """
    if window < 1:
        raise DataError(f"window: must be >= 1, got {window}")
    m = served_run(runs_dir, run)
    path = Path(interactions)
    new = _read_update_file(m, path)
    if new.height == 0:
        raise DataFileError(str(path), "no interactions in the file")
    folder = RunFolder(m.path)
    folder.updates.mkdir(parents=True, exist_ok=True)
    with open(folder.updates / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prev = load_version(m, "latest")
        _, ok = m.items.lookup(new["item_id"].to_numpy())
        unknown = new.filter(pl.Series(~ok))
        known = new.filter(pl.Series(ok))
        if unknown.height:
            ids = unknown["item_id"].unique().sort().to_list()
            warnings.warn(f"{path}: {unknown.height} row(s) with item ids unknown to run {m.run_id} skipped "
                          f"({', '.join(map(str, ids[:10]))}{', ...' if len(ids) > 10 else ''})",
                          ColdStartWarning, stacklevel=2)
        cumulative = known if prev is None else pl.concat([prev.interactions, known], how="vertical_relaxed")
        touched = new["user_id"].unique().sort()
        snap = m.sql("SELECT user_id, item_id, weight, ts FROM interactions "
                     "WHERE user_id IN (SELECT unnest(?))", [touched.to_list()])
        history = pl.concat([utc(snap).with_columns(pl.col("user_id").cast(new.schema["user_id"]),
                                               pl.col("item_id").cast(new.schema["item_id"])),
                             cumulative.filter(pl.col("user_id").is_in(touched.implode()))], how="vertical_relaxed")
        recent = m.recent_positives(history, window)
        users = recent["user_id"].unique(maintain_order=True)
        recent = recent.join(users.to_frame().with_row_index("row"), on="user_id").sort("row", maintain_order=True)
        csr = sp.csr_matrix((np.ones(recent.height, np.float32),
                             (recent["row"].to_numpy().astype(np.int64), recent["item_idx"].to_numpy())),
                            shape=(len(users), len(m.item_ids)))
        vecs = m.foldin().users(csr)
        ids_new = users.to_numpy()
        if prev is not None:
            keep = ~np.isin(prev.user_ids, ids_new)
            ids_all = np.concatenate([prev.user_ids[keep], ids_new])
            vecs_all = np.concatenate([prev.user_vecs[keep], vecs])
        else:
            ids_all, vecs_all = ids_new, vecs
        known_users = m.user_ids if prev is None else \
            np.concatenate([m.user_ids, prev.interactions["user_id"].to_numpy().astype(m.user_ids.dtype)])
        name = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        manifest = {"version": name, "run_id": m.run_id, "source": str(path.resolve()), "rows_read": new.height,
                    "rows_used": known.height, "unknown_items_skipped": unknown.height,
                    "unknown_item_ids": [str(x) for x in unknown["item_id"].unique().sort().to_list()[:20]],
                    "users_touched": touched.len(), "users_updated": len(ids_new),
                    "new_users": int((~np.isin(touched.to_numpy(), known_users)).sum()),
                    "users_in_version": len(ids_all), "previous": prev.name if prev is not None else None,
                    "window": window, "method": foldin.DEFAULT_METHOD, "created_at": datetime.now(timezone.utc).isoformat()}
        _write_version(folder.updates / name, ids_all, vecs_all.astype(np.float32), cumulative, manifest)
    return manifest


def _write_version(path: Path, user_ids: np.ndarray, user_vecs: np.ndarray, interactions: pl.DataFrame,
                   manifest: dict) -> None:
    """Write a version into a temporary folder (mode from the umask, unlike ``mkdtemp``'s 0700), rename it to
    ``path``; on any failure remove the temporary folder and raise :class:`WriteError`."""
    tmp = path.parent / f".tmp-{secrets.token_hex(6)}"
    with writing(path, "the update version"):
        try:
            tmp.mkdir()
            write_arrays(tmp / "user_vecs.npz", user_ids=user_ids, user_vecs=user_vecs)
            buf = io.BytesIO()
            interactions.write_parquet(buf)
            atomic_write_bytes(tmp / "interactions.parquet", buf.getvalue())
            atomic_write_json(tmp / "manifest.json", manifest)
            os.rename(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
