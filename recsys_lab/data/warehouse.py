"""The DuckDB warehouse: immutable, content-addressed snapshots.

Each ingest writes one DuckDB file ``warehouse/snapshots/<id>.duckdb`` (tables ``interactions``, ``users``,
``items``, ``snapshot``), where ``<id>`` is the first 16 hex digits of a SHA-256 over the data. The file is
written under a temporary name and renamed, so it is complete or absent; it is never written again, so
re-ingesting identical data is a no-op and a past run's data never changes. Readers open snapshots
read-only: any number of notebooks and retrains can hold the same snapshot open at once, and a notebook
never blocks a retrain (DuckDB allows one writer per file, and nobody writes a published snapshot).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import polars as pl

from recsys_lab._fs import atomic_write_text, atomic_write_with
from recsys_lab.errors import DataError

__all__ = ["query_files", "Snapshot", "content_hash", "ingest", "open_snapshot", "list_snapshots"]

log = logging.getLogger(__name__)

TABLES = ("interactions", "users", "items")


def _canonical(df: pl.DataFrame) -> pl.DataFrame:
    """Sorted rows with list columns joined, so equal data hashes equally regardless of row order."""
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    out = df.with_columns(pl.col(c).list.sort().list.join("|") for c in lists)
    return out.sort(out.columns)


def content_hash(tables: dict[str, pl.DataFrame]) -> str:
    """SHA-256 hex digest over the tables' names, schemas and sorted rows (as CSV).

    Parameters
    ----------
    tables : dict of str to pl.DataFrame

    Returns
    -------
    str
        64 hex digits; equal for equal data in any row order.
    """
    h = hashlib.sha256()
    for name in sorted(tables):
        df = _canonical(tables[name])
        h.update(f"{name}:{df.schema}\n".encode())
        buf = io.BytesIO()
        df.write_csv(buf)
        h.update(buf.getvalue())
    return h.hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One immutable warehouse snapshot.

    Attributes
    ----------
    id : str
        16 hex digits of the content hash (``hash`` holds all 64).
    path : Path
        The ``.duckdb`` file.
    """

    id: str
    hash: str
    path: Path

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A read-only DuckDB connection to this snapshot (close it, or use it in a ``with`` block).

        Returns
        -------
        duckdb.DuckDBPyConnection
        """
        return duckdb.connect(str(self.path), read_only=True)

    def sql(self, query: str, params: list | None = None) -> pl.DataFrame:
        """Run ``query`` (DuckDB SQL, ``?`` placeholders bound to ``params``) against the snapshot; a Polars frame.

        Parameters
        ----------
        query : str
            DuckDB SQL over the snapshot's tables (``interactions``, ``users``, ``items``, ``snapshot``).
        params : list, optional
            Values bound to the ``?`` placeholders.

        Returns
        -------
        pl.DataFrame
            The query's result.
        """
        with self.connect() as con:
            return con.sql(query, params=params).pl()

    def table(self, name: str) -> pl.DataFrame:
        """One of ``interactions``, ``users``, ``items`` as a Polars frame.

        Parameters
        ----------
        name : str
            ``interactions``, ``users`` or ``items``.

        Returns
        -------
        pl.DataFrame
            The whole table.

        Raises
        ------
        DataError
            Another table name.
        """
        if name not in TABLES:
            raise DataError(f"snapshot {self.id}: no table {name!r}; expected one of {TABLES}")
        return self.sql(f"SELECT * FROM {name}")

    def info(self) -> dict:
        """The ``snapshot`` metadata row: id, hash, source, created_at, row counts.

        Returns
        -------
        dict
            Column name to value of the single ``snapshot`` row.
        """
        return self.sql("SELECT * FROM snapshot").to_dicts()[0]


def _snapshot_dir(warehouse: str | Path) -> Path:
    return Path(warehouse) / "snapshots"


def ingest(tables: dict[str, pl.DataFrame], warehouse: str | Path = "warehouse", *, source: str = "") -> Snapshot:
    """Store ``tables`` as a new snapshot, or return the existing one holding the same data.

    Parameters
    ----------
    tables : dict
        ``{"interactions": ..., "users": ..., "items": ...}`` Polars frames.
    warehouse : str or Path
        Warehouse directory (created if missing).
    source : str
        Where the data came from, recorded in the ``snapshot`` table.

    Returns
    -------
    Snapshot

    Raises
    ------
    DataError
        A table is missing.
    """
    missing = [t for t in TABLES if t not in tables]
    if missing:
        raise DataError(f"ingest needs tables {TABLES}; missing {missing}")
    digest = content_hash(tables)
    snap = Snapshot(id=digest[:16], hash=digest, path=_snapshot_dir(warehouse) / f"{digest[:16]}.duckdb")
    if snap.path.exists():
        log.info("snapshot %s already in the warehouse: nothing to ingest", snap.id)
    else:
        def write(tmp: Path) -> None:
            tmp.unlink()  # DuckDB wants to create the file itself
            with duckdb.connect(str(tmp)) as con:
                for name in TABLES:
                    con.register(f"_{name}", tables[name])
                    con.execute(f"CREATE TABLE {name} AS SELECT * FROM _{name}")
                counts = {name: tables[name].height for name in TABLES}
                con.execute(
                    "CREATE TABLE snapshot AS SELECT ? AS id, ? AS hash, ? AS source, ?::TIMESTAMPTZ AS created_at,"
                    " ? AS n_interactions, ? AS n_users, ? AS n_items",
                    [snap.id, digest, source, datetime.now(timezone.utc), counts["interactions"],
                     counts["users"], counts["items"]])
                con.execute("CHECKPOINT")
            Path(str(tmp) + ".wal").unlink(missing_ok=True)

        atomic_write_with(snap.path, write)
        log.info("ingested snapshot %s from %s", snap.id, source)
    atomic_write_text(_snapshot_dir(warehouse) / "LATEST", snap.id + "\n")
    return snap


def open_snapshot(snapshot_id: str = "latest", warehouse: str | Path = "warehouse") -> Snapshot:
    """Open an existing snapshot by id (or a unique prefix), or ``"latest"``.

    Parameters
    ----------
    snapshot_id : str
        A snapshot id, a unique prefix of one, or ``latest`` (the id in ``LATEST``).
    warehouse : str or Path
        The warehouse directory (default ``warehouse``).

    Returns
    -------
    Snapshot
        Its id, content hash and DuckDB file path.

    Raises
    ------
    DataError
        No such snapshot, or the prefix is ambiguous.
    """
    d = _snapshot_dir(warehouse)
    if snapshot_id == "latest":
        latest = d / "LATEST"
        if not latest.is_file():
            raise DataError(f"{d}: no snapshot yet; run `recsys-lab retrain` or warehouse.ingest first")
        snapshot_id = latest.read_text().strip()
    hits = sorted(d.glob(f"{snapshot_id}*.duckdb")) if d.is_dir() else []
    if len(hits) != 1:
        raise DataError(f"{d}: {'no' if not hits else 'more than one'} snapshot matches {snapshot_id!r}")
    path = hits[0]
    with duckdb.connect(str(path), read_only=True) as con:
        digest = con.execute("SELECT hash FROM snapshot").fetchone()[0]
    return Snapshot(id=path.stem, hash=digest, path=path)


def query_files(query: str) -> pl.DataFrame:
    """Run a DuckDB SQL query over files named in it (``read_json``, ``read_text``, ``read_parquet``...) in an
    in-memory database: how the run registry queries ``runs/*/run.json`` without a server.

    Parameters
    ----------
    query : str
        DuckDB SQL; file paths and globs inside it are read relative to the working directory.

    Returns
    -------
    pl.DataFrame
        The query's result.

    Raises
    ------
    DataError
        DuckDB could not run the query (e.g. a file that is not valid JSON); the message is DuckDB's first line.
    """
    try:
        with duckdb.connect() as con:
            return con.sql(query).pl()
    except duckdb.Error as exc:
        raise DataError(str(exc).splitlines()[0]) from exc


def list_snapshots(warehouse: str | Path = "warehouse") -> pl.DataFrame:
    """All snapshots' metadata rows, newest first (empty frame if none).

    Parameters
    ----------
    warehouse : str or Path
        The warehouse directory (default ``warehouse``).

    Returns
    -------
    pl.DataFrame
        One :meth:`Snapshot.info` row per snapshot, sorted by ``created_at`` descending; no columns when
        there is no snapshot.
    """
    paths = sorted(_snapshot_dir(warehouse).glob("*.duckdb"))
    rows = [open_snapshot(p.stem, warehouse).info() for p in paths]
    return pl.DataFrame(rows).sort("created_at", descending=True) if rows else pl.DataFrame()
