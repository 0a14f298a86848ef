"""Sources: MovieLens 100k (located in a directory, zip, cache or downloaded; parsed and checked) and any
interaction log in CSV or Parquet with a column mapping (:func:`load_files`), both into :class:`Tables`.

Source: F. Maxwell Harper and Joseph A. Konstan, "The MovieLens Datasets: History and Context", ACM TiiS
5(4), 2015. https://grouplens.org/datasets/movielens/100k/ . The licence forbids redistribution: the
project never ships the files; it downloads them or reads a path you give it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recsys_lab.errors import DataFileError, DownloadError

__all__ = ["ML100K_URL", "ML100K_MD5", "GENRES", "Tables", "MovieLens", "resolve_source", "load_movielens_100k",
           "download_movielens_100k", "load_files", "load"]

log = logging.getLogger(__name__)

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
DATA_ENV = "RECSYS_LAB_DATA_DIR"

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
"""The 19 genre flags of ``u.item``, in file order (as listed in ``u.genre``)."""

_REQUIRED = ("u.data", "u.item", "u.user")


@dataclass(frozen=True)
class Tables:
    """The canonical tables every source is loaded into, as Polars frames.

    Attributes
    ----------
    interactions : pl.DataFrame
        ``user_id, item_id`` (Int64 or Utf8), ``weight: Float64`` (rating, or transformed implicit weight such
        as a play count), ``ts: Datetime[us, UTC]``. MovieLens 100k: 100,000 rows, weight = rating 1..5.
    users : pl.DataFrame
        ``user_id`` plus side-feature columns. MovieLens: ``age: Int64, gender, occupation, zip: Utf8``; 943.
    items : pl.DataFrame
        ``item_id, title: Utf8`` plus side-feature columns. MovieLens: ``release_date: Date (nullable),
        genre: List[Utf8]``; 1,682 rows.
    source : str
        Where the data was read from.
    has_time : bool
        False for a log without a time column (``ts`` is then all null).
    """

    interactions: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    source: str
    has_time: bool = True


class _Files:
    """Read access to the GroupLens files in a directory or inside a zip."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if location.is_file():
            try:
                self._zip = zipfile.ZipFile(location)
                bad = self._zip.testzip()
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataFileError(str(location), f"not a readable zip archive ({exc}); "
                                    "delete it or point RECSYS_LAB_DATA_DIR at a good copy") from exc
            if bad is not None:
                raise DataFileError(f"{location}!{bad}", "CRC check failed: the archive is corrupt")
            names = self._zip.namelist()
            hits = [n for n in names if n.endswith("u.data")]
            if not hits:
                raise DataFileError(str(location), "zip holds no u.data: not a MovieLens 100k archive")
            self._prefix = hits[0][: -len("u.data")]
        for name in _REQUIRED:
            if not self.exists(name):
                raise DataFileError(self.describe(name), "required MovieLens 100k file is missing")

    def describe(self, name: str) -> str:
        return f"{self.location}!{self._prefix}{name}" if self._zip else str(self.location / name)

    def exists(self, name: str) -> bool:
        if self._zip:
            return f"{self._prefix}{name}" in self._zip.namelist()
        return (self.location / name).is_file()

    def read(self, name: str) -> bytes:
        try:
            if self._zip:
                return self._zip.read(f"{self._prefix}{name}")
            return (self.location / name).read_bytes()
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataFileError(self.describe(name), f"cannot read: {exc}") from exc


def _parse(files: _Files, name: str, sep: str, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """Parse one separator-delimited file; name the file, line and column of the first bad value.

    Returns the typed columns plus ``_line`` (1-based line number). Blank lines are skipped; empty text
    fields are kept as empty strings; empty numeric fields become null (counted by :mod:`recsys_lab.data.guardrails`,
    which reports every problem at once); a non-numeric value in a numeric field is an error here.
    """
    path = files.describe(name)
    raw = files.read(name)
    if not raw.strip():
        raise DataFileError(path, "file is empty")
    names = list(columns)
    # GroupLens files are latin-1 (u.item has accented titles).
    lines = pl.DataFrame({"_raw": raw.decode("latin-1").splitlines()}).with_row_index("_line", offset=1)
    lines = lines.filter(pl.col("_raw").str.strip_chars() != "")
    n_fields = pl.col("_raw").str.count_matches(sep, literal=True) + 1
    bad = lines.filter(n_fields != len(names))
    if bad.height:
        found = bad.select(n_fields)[0, 0]
        raise DataFileError(path, f"expected {len(names)} fields separated by {sep!r}, found {found} "
                            "(truncated or malformed line)", line=int(bad["_line"][0]))
    df = lines.select("_line", pl.col("_raw").str.split_exact(sep, len(names) - 1)
                      .struct.rename_fields(names).alias("_f")).unnest("_f")
    out = [pl.col("_line")]
    for n, dtype in columns.items():
        if dtype == pl.Utf8:
            out.append(pl.col(n))
            continue
        typed = pl.col(n).str.strip_chars().cast(dtype, strict=False)
        bad = df.filter(typed.is_null() & (pl.col(n).str.strip_chars() != ""))
        if bad.height:
            raise DataFileError(path, f"expected {dtype}, got {bad[n][0]!r}", line=int(bad["_line"][0]), column=n)
        out.append(typed.alias(n))
    return df.select(out)


def _check_range(df: pl.DataFrame, path: str, column: str, lo: float, hi: float) -> None:
    bad = df.filter((pl.col(column) < lo) | (pl.col(column) > hi))
    if bad.height:
        raise DataFileError(path, f"{bad.height} value(s) outside [{lo}, {hi}], first {bad[column][0]}",
                            line=int(bad["_line"][0]), column=column)


def _load(files: _Files) -> MovieLens:
    inter = _parse(files, "u.data", "\t", {"user_id": pl.Int64, "item_id": pl.Int64, "weight": pl.Float64,
                                           "ts": pl.Int64})
    # rating range, timestamps, nulls and unknown ids are checked by recsys_lab.data.guardrails (all at once)
    interactions = inter.select("user_id", "item_id", "weight",
                                pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").alias("ts"))

    users = _parse(files, "u.user", "|", {"user_id": pl.Int64, "age": pl.Int64, "gender": pl.Utf8,
                                           "occupation": pl.Utf8, "zip": pl.Utf8}).drop("_line")

    flag_cols = {f"g{i}": pl.Int64 for i in range(len(GENRES))}
    items = _parse(files, "u.item", "|", {"item_id": pl.Int64, "title": pl.Utf8, "release_date": pl.Utf8,
                                           "video_release_date": pl.Utf8, "url": pl.Utf8, **flag_cols})
    item_path = files.describe("u.item")
    for c in flag_cols:
        _check_range(items, item_path, c, 0, 1)
    dates = pl.col("release_date").str.strptime(pl.Date, "%d-%b-%Y", strict=False)
    bad = items.filter(dates.is_null() & pl.col("release_date").is_not_null()
                       & (pl.col("release_date").str.strip_chars() != ""))
    if bad.height:
        raise DataFileError(item_path, f"expected a date like 01-Jan-1995, got {bad['release_date'][0]!r}",
                            line=int(bad["_line"][0]), column="release_date")
    genre_list = pl.concat_list([pl.when(pl.col(f"g{i}") == 1).then(pl.lit(g)).otherwise(None)
                                 for i, g in enumerate(GENRES)]).list.drop_nulls()
    items = items.select("item_id", "title", dates.alias("release_date"), genre_list.alias("genre"))
    return Tables(interactions=interactions, users=users, items=items, source=str(files.location))


def download_movielens_100k(cache_dir: str | Path, *, url: str = ML100K_URL, md5: str = ML100K_MD5,
                            timeout: float = 60.0) -> Path:
    """Download the ML-100k zip into ``cache_dir`` (atomically: temp file, MD5 check, rename).

    Parameters
    ----------
    cache_dir : str or Path
        Directory for ``ml-100k.zip`` (created if missing).
    url, md5 : str
        Source and expected MD5 hex digest (GroupLens' published values by default).
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    Path
        The zip, ``cache_dir / "ml-100k.zip"``.

    Raises
    ------
    DownloadError
        Network failure or checksum mismatch; no partial file is left in ``cache_dir``.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / "ml-100k.zip"
    tmp = cache / f".ml-100k.zip.part-{os.getpid()}"
    digest = hashlib.md5()
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DownloadError(f"{url}: MD5 {digest.hexdigest()} does not match the published {md5}")
        os.replace(tmp, target)
    except DownloadError:
        raise
    except Exception as exc:  # network, HTTP, disk: all leave no partial file
        raise DownloadError(f"{url}: download failed ({exc}); on an offline machine set {DATA_ENV} "
                            "to a directory or zip with the GroupLens files") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def resolve_source(path: str | Path | None = None, *, warehouse: str | Path = "warehouse",
                   download: bool = True) -> Path:
    """Find the ML-100k files: ``path``, else ``$RECSYS_LAB_DATA_DIR``, else the warehouse cache.

    A directory may hold the files themselves, an ``ml-100k/`` folder or an ``ml-100k.zip``.

    Parameters
    ----------
    path : str or Path, optional
        A file or directory given explicitly (``--data`` / ``data.path``).
    warehouse : str or Path
        The warehouse directory whose ``downloads/ml-100k.zip`` is the cache (default ``warehouse``).
    download : bool
        Download into the cache when nothing local is found (default True).

    Returns
    -------
    Path
        A directory holding ``u.data`` or a zip file.

    Raises
    ------
    DataFileError
        The given path does not exist or holds no MovieLens files.
    DownloadError
        Nothing local and the download failed (or ``download=False``).
    """
    given = path if path is not None else os.environ.get(DATA_ENV) or None
    if given is not None:
        p = Path(given).expanduser()
        origin = "--data" if path is not None else DATA_ENV
        if not p.exists():
            raise DataFileError(str(p), f"does not exist (from {origin})")
        if p.is_file():
            return p
        for cand in (p, p / "ml-100k"):
            if (cand / "u.data").is_file():
                return cand
        if (p / "ml-100k.zip").is_file():
            return p / "ml-100k.zip"
        raise DataFileError(str(p), f"holds neither u.data, ml-100k/u.data nor ml-100k.zip (from {origin})")
    cached = Path(warehouse) / "downloads" / "ml-100k.zip"
    if cached.is_file():
        return cached
    if not download:
        raise DownloadError(f"no local copy of MovieLens 100k and downloading is off; set {DATA_ENV}")
    return download_movielens_100k(cached.parent)


MovieLens = Tables
"""Alias: the MovieLens loader returns :class:`Tables`."""


def load_movielens_100k(path: str | Path | None = None, *, warehouse: str | Path = "warehouse") -> Tables:
    """Load and check MovieLens 100k (``u.data``, ``u.item``, ``u.user``).

    Parameters
    ----------
    path : str or Path, optional
        Directory or zip with the GroupLens files; default ``$RECSYS_LAB_DATA_DIR`` or the cache.
    warehouse : str or Path
        Warehouse directory whose ``downloads/`` caches the zip.

    Returns
    -------
    Tables
        Weight is the rating (1..5, checked by :mod:`recsys_lab.data.guardrails` with every other rule).

    Raises
    ------
    DataFileError
        A file is missing, empty, truncated or malformed; the message names the file, line and column.
    DownloadError
        See :func:`resolve_source`.
    """
    return _load(_Files(resolve_source(path, warehouse=warehouse)))


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


def load_files(cfg) -> Tables:  # noqa: ANN001 - DataConfig, imported lazily to keep layers one-way
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
        Missing file or column, unreadable file, unparsable timestamps, epoch numbers too large for
        ``time_unit`` (the message suggests ``time_unit = "ms"``).
    """
    ipath = str(cfg.interactions)
    raw = _read_table(ipath, "interactions")
    time_col = cfg.time_col or None
    if time_col == "ts" and "ts" not in raw.columns:  # the default name and no such column: a log without time
        log.info("%s has no 'ts' column: no timestamps (set data.time_col to name one)", ipath)
        time_col = None
    cols = [cfg.user_col, cfg.item_col] + ([time_col] if time_col else []) + ([cfg.weight_col] if cfg.weight_col else [])
    _require(raw, ipath, cols)
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


def load(cfg) -> tuple[Tables, tuple[float, ...]]:  # noqa: ANN001
    """Load the configured source. Returns the tables and the allowed raw weight range (``()``: >= 0).

    Parameters
    ----------
    cfg : DataConfig
        ``config.data``: ``movielens-100k`` (from ``path`` or the cache) or ``files``.

    Returns
    -------
    tables : Tables
        Interactions, users and items as loaded.
    weight_range : tuple of float
        ``(1.0, 5.0)`` for MovieLens ratings, else ``cfg.weight_range``.

    Raises
    ------
    DataFileError, DownloadError
        The source is missing, unreadable or malformed, or the download failed.
    """
    if cfg.source == "movielens-100k":
        return load_movielens_100k(cfg.path, warehouse=cfg.warehouse), (1.0, 5.0)
    return load_files(cfg), cfg.weight_range
