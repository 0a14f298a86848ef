"""Any interaction log in CSV or Parquet, plus optional user and item tables, with a column mapping from
``[data]`` (``source = "files"``), into :class:`recsys_lab.data.tables.Tables`."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from recsys_lab.config import DataConfig
from recsys_lab.data.tables import Tables
from recsys_lab.errors import DataFileError

__all__ = ["load_files"]

log = logging.getLogger(__name__)


def _read_table(path: str | Path, what: str) -> pl.DataFrame:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataFileError(str(p), f"{what} file does not exist")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(p)
        if p.suffix.lower() in (".csv", ".tsv", ".txt"):
            return pl.read_csv(p, separator="\t" if p.suffix.lower() == ".tsv" else ",", try_parse_dates=True,
                               infer_schema_length=10_000)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DataFileError(str(p), f"cannot read {what} ({exc})".splitlines()[0]) from exc
    raise DataFileError(str(p), f"unknown format {p.suffix!r}; expected .csv, .tsv or .parquet")


def _require(df: pl.DataFrame, path: str, columns: list[str]) -> None:
    for c in columns:
        if c not in df.columns:
            raise DataFileError(path, f"missing column {c!r}; the file has {df.columns} "
                                "(set the column mapping in [data])", column=c)


_NESTED = (pl.List, pl.Array, pl.Struct, pl.Object)


def _require_flat(df: pl.DataFrame, path: str, columns: list[str]) -> None:
    """Every named column holds scalars: nested Parquet columns (list, array, struct) are refused by name."""
    for c in columns:
        dtype = df.schema[c]
        if isinstance(dtype, _NESTED) or dtype in _NESTED:
            raise DataFileError(path, f"column has nested type {dtype}; expected one number, text or timestamp "
                                "per row (flatten or unnest it first)", column=c)


def _to_utc(df: pl.DataFrame, path: str, col: str, unit: str) -> pl.Expr:
    dtype = df.schema[col]
    if isinstance(dtype, pl.Datetime):
        return (pl.col(col).dt.replace_time_zone("UTC") if dtype.time_zone is None
                else pl.col(col).dt.convert_time_zone("UTC")).dt.cast_time_unit("us")
    if isinstance(dtype, pl.Date):
        return pl.col(col).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype.is_numeric():
        top = df[col].drop_nulls().abs().max()
        limit = 1e11 if unit == "s" else 1e14  # 1e11 s is the year 5138: the numbers are not in this unit
        if top is not None and top > limit:
            hint = 'time_unit = "ms"' if unit == "s" and top <= 1e14 else "epoch seconds or milliseconds"
            raise DataFileError(path, f"epoch timestamps up to {top:.0f} are too large for time_unit = {unit!r} "
                                f"(they would be after the year 5000); expected {hint}", column=col)
        return pl.from_epoch(pl.col(col).cast(pl.Int64), time_unit=unit).dt.replace_time_zone("UTC")
    if dtype == pl.Utf8:
        parsed = pl.col(col).str.to_datetime(strict=False, time_zone="UTC", time_unit="us")
        bad = df.filter(parsed.is_null() & pl.col(col).is_not_null())
        if bad.height:
            raise DataFileError(path, f"cannot parse timestamp {bad[col][0]!r} (expected ISO 8601 or epoch "
                                "numbers)", column=col)
        return parsed
    raise DataFileError(path, f"timestamp column has type {dtype}; expected datetime, date, number or text",
                        column=col)


def load_files(cfg: DataConfig) -> Tables:
    """Load any interaction log (CSV or Parquet) plus optional user and item tables.

    Parameters
    ----------
    cfg : DataConfig
        ``interactions``, ``users``, ``items`` paths and the column mapping (``user_col``, ``item_col``,
        ``time_col`` (``""``: none), ``weight_col``, ``time_unit``, ``weight_transform``, ``title_col``).

    Returns
    -------
    Tables
        Ids renamed to ``user_id`` / ``item_id`` (their type kept: integers or text), ``weight`` (raw
        Float64; ``weight_transform`` is applied when features are built, so the snapshot holds the data as
        logged), ``ts`` (UTC). Without a user or item table, one is derived from the interactions (no side
        features).

    Raises
    ------
    DataFileError
        Missing file or column, unreadable file, a nested (list, array or struct) id, weight or time column,
        unparsable timestamps, epoch numbers too large for ``time_unit`` (the message suggests
        ``time_unit = "ms"``).
    """
    ipath = str(cfg.interactions)
    raw = _read_table(ipath, "interactions")
    time_col = cfg.time_col or None
    if time_col == "ts" and "ts" not in raw.columns:  # the default name and no such column: a log without time
        log.info("%s has no 'ts' column: no timestamps (set data.time_col to name one)", ipath)
        time_col = None
    cols = [cfg.user_col, cfg.item_col] + ([time_col] if time_col else []) + ([cfg.weight_col] if cfg.weight_col else [])
    _require(raw, ipath, cols)
    _require_flat(raw, ipath, cols)
    weight = pl.col(cfg.weight_col).cast(pl.Float64, strict=False) if cfg.weight_col else pl.lit(1.0)
    ts = (_to_utc(raw, ipath, time_col, cfg.time_unit) if time_col
          else pl.lit(None, dtype=pl.Datetime("us", "UTC")))
    inter = raw.select(pl.col(cfg.user_col).alias("user_id"), pl.col(cfg.item_col).alias("item_id"),
                       weight.alias("weight"), ts.alias("ts"))

    def side(path: str | None, key: str, new_key: str) -> pl.DataFrame:
        if not path:
            return inter.select(pl.col(new_key).unique().drop_nulls().sort())
        df = _read_table(path, f"{new_key[:-3]}s")
        _require(df, str(path), [key])
        _require_flat(df, str(path), [key])
        df = df.rename({key: new_key})
        if df.schema[new_key] != inter.schema[new_key]:
            df = df.with_columns(pl.col(new_key).cast(inter.schema[new_key], strict=False))
        return df

    users = side(cfg.users, cfg.user_col, "user_id")
    items = side(cfg.items, cfg.item_col, "item_id")
    if cfg.title_col:
        _require(items, str(cfg.items), [cfg.title_col])
        items = items.rename({cfg.title_col: "title"}) if cfg.title_col != "title" else items
    if "title" not in items.columns:
        items = items.with_columns(pl.col("item_id").cast(pl.Utf8).alias("title"))
    items = items.with_columns(pl.col("title").cast(pl.Utf8))
    return Tables(interactions=inter, users=users, items=items, source=ipath, has_time=time_col is not None)
