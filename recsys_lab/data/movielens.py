"""The MovieLens 100k preset, once: where GroupLens publishes it, its files and their format, its genres, its
rating range and what counts as a positive; located (a directory, a zip, the cache or a download), parsed and
checked into :class:`recsys_lab.data.tables.Tables`.

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
from pathlib import Path

import polars as pl

from recsys_lab.data.tables import Tables
from recsys_lab.errors import DataFileError, DownloadError

__all__ = ["URL", "MD5", "ZIP_NAME", "FOLDER", "FILES", "DATA_ENV", "GENRES", "RATING_RANGE", "POSITIVE_THRESHOLD",
           "N_USERS", "N_ITEMS", "N_INTERACTIONS", "UPDATE_COLUMNS", "resolve_source", "load_movielens_100k",
           "download_movielens_100k"]

log = logging.getLogger(__name__)

URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
"""Where GroupLens publishes the archive."""
MD5 = "0e33842e24a9c977be4e0107933c0723"
"""GroupLens' published MD5 of :data:`URL`."""
ZIP_NAME = "ml-100k.zip"
"""The archive's file name (also the name of the download cache)."""
FOLDER = "ml-100k"
"""The folder the archive unpacks to."""
FILES = ("u.data", "u.item", "u.user")
"""The files read: ratings (tab-separated ``user_id, item_id, rating, timestamp``), items and users (``|``)."""
DATA_ENV = "RECSYS_LAB_DATA_DIR"
"""Environment variable naming a directory or zip with the GroupLens files (offline machines, CI)."""

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
"""The 19 genre flags of ``u.item``, in file order (as listed in ``u.genre``)."""

RATING_RANGE = (1.0, 5.0)
"""Allowed ``[min, max]`` of a rating (the preset's ``data.weight_range``, checked by the guardrails)."""
POSITIVE_THRESHOLD = 4.0
"""Ratings at or above this are positives (the preset's default ``data.positive_threshold``)."""
N_USERS, N_ITEMS, N_INTERACTIONS = 943, 1682, 100_000
"""Rows of ``u.user``, ``u.item`` and ``u.data``."""

UPDATE_COLUMNS = {"user_col": "user_id", "item_col": "item_id", "time_col": "timestamp", "weight_col": "rating",
                  "time_unit": "s"}
"""Column mapping of an update file for a MovieLens run: the fields of ``u.data`` as a CSV header
``user_id,item_id,rating,timestamp`` (epoch seconds)."""

_DATA, _ITEM, _USER = FILES


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
            hits = [n for n in names if n.endswith(_DATA)]
            if not hits:
                raise DataFileError(str(location), f"zip holds no {_DATA}: not a MovieLens 100k archive")
            self._prefix = hits[0][: -len(_DATA)]
        for name in FILES:
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


_MAX_EPOCH_SECONDS = 10**11
"""Epoch seconds above this are after the year 5000: the numbers are not seconds (the same bound as
:mod:`recsys_lab.data.files` uses for ``time_unit = "s"``)."""


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


def _load(files: _Files) -> Tables:
    inter = _parse(files, _DATA, "\t", {"user_id": pl.Int64, "item_id": pl.Int64, "weight": pl.Float64,
                                           "ts": pl.Int64})
    # rating range, timestamps, nulls and unknown ids are checked by recsys_lab.data.guardrails (all at once);
    # epoch numbers beyond what seconds can mean (milliseconds pasted in) overflow the conversion: refused here
    too_large = inter.filter(pl.col("ts").abs() > _MAX_EPOCH_SECONDS)
    if too_large.height:
        raise DataFileError(files.describe(_DATA), f"{too_large.height} timestamp(s) too large for epoch seconds "
                            f"(first {too_large['ts'][0]}: after the year 5000; milliseconds?); u.data holds "
                            "seconds since 1970-01-01 UTC", line=int(too_large["_line"][0]), column="ts")
    interactions = inter.select("user_id", "item_id", "weight",
                                pl.from_epoch("ts", time_unit="s").dt.replace_time_zone("UTC").alias("ts"))

    users = _parse(files, _USER, "|", {"user_id": pl.Int64, "age": pl.Int64, "gender": pl.Utf8,
                                           "occupation": pl.Utf8, "zip": pl.Utf8}).drop("_line")

    flag_cols = {f"g{i}": pl.Int64 for i in range(len(GENRES))}
    items = _parse(files, _ITEM, "|", {"item_id": pl.Int64, "title": pl.Utf8, "release_date": pl.Utf8,
                                           "video_release_date": pl.Utf8, "url": pl.Utf8, **flag_cols})
    item_path = files.describe(_ITEM)
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


def download_movielens_100k(cache_dir: str | Path, *, url: str = URL, md5: str = MD5,
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
    target = cache / ZIP_NAME
    tmp = cache / f".{ZIP_NAME}.part-{os.getpid()}"
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
        for cand in (p, p / FOLDER):
            if (cand / _DATA).is_file():
                return cand
        if (p / ZIP_NAME).is_file():
            return p / ZIP_NAME
        raise DataFileError(str(p), f"holds neither {_DATA}, {FOLDER}/{_DATA} nor {ZIP_NAME} (from {origin})")
    cached = Path(warehouse) / "downloads" / ZIP_NAME
    if cached.is_file():
        return cached
    if not download:
        raise DownloadError(f"no local copy of MovieLens 100k and downloading is off; set {DATA_ENV}")
    return download_movielens_100k(cached.parent)


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
