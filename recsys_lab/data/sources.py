"""Which source a ``[data]`` section names, and loading it: the MovieLens 100k preset
(:mod:`recsys_lab.data.movielens`) or any interaction log in files (:mod:`recsys_lab.data.files`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from recsys_lab.config import SOURCE_FILES, SOURCE_MOVIELENS, DataConfig
from recsys_lab.data import movielens
from recsys_lab.data.files import load_files
from recsys_lab.data.movielens import load_movielens_100k
from recsys_lab.data.tables import Tables

__all__ = ["weight_range", "load", "update_source"]


def weight_range(cfg: DataConfig) -> tuple[float, ...]:
    """The allowed raw weight range of the configured source.

    Parameters
    ----------
    cfg : DataConfig
        The ``[data]`` section (its ``source`` and ``weight_range``).

    Returns
    -------
    tuple of float
        ``(min, max)``: the MovieLens rating range for the preset, else ``cfg.weight_range`` (``()``: only
        ``weight >= 0``).
    """
    return movielens.RATING_RANGE if cfg.source == SOURCE_MOVIELENS else tuple(cfg.weight_range)


def load(cfg: DataConfig) -> tuple[Tables, tuple[float, ...]]:
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
        See :func:`weight_range`.

    Raises
    ------
    DataFileError, DownloadError
        The source is missing, unreadable or malformed, or the download failed.
    """
    if cfg.source == SOURCE_MOVIELENS:
        return load_movielens_100k(cfg.path, warehouse=cfg.warehouse), weight_range(cfg)
    return load_files(cfg), weight_range(cfg)


def update_source(cfg: DataConfig, path: str | Path) -> tuple[DataConfig, tuple[float, ...]]:
    """How to read a file of new interactions for a run on ``cfg``: a ``files`` source and its weight range.

    Parameters
    ----------
    cfg : DataConfig
        The run's ``config.data``.
    path : str or Path
        The update file (CSV or Parquet).

    Returns
    -------
    cfg : DataConfig
        ``files`` source reading only ``path`` (no user or item table): MovieLens runs read the fields of
        ``u.data`` with a header (:data:`recsys_lab.data.movielens.UPDATE_COLUMNS`), runs on files their own
        column mapping.
    weight_range : tuple of float
        See :func:`weight_range` (of the run's source).
    """
    columns = movielens.UPDATE_COLUMNS if cfg.source == SOURCE_MOVIELENS else {}
    return (replace(cfg, source=SOURCE_FILES, interactions=str(path), users=None, items=None, title_col=None,
                    **columns), weight_range(cfg))
