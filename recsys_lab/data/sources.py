"""Which source a ``[data]`` section names, and loading it (then checked and stored: :func:`load_checked`): the MovieLens 100k preset
(:mod:`recsys_lab.data.movielens`) or any interaction log in files (:mod:`recsys_lab.data.files`)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from recsys_lab.config import SOURCE_FILES, SOURCE_MOVIELENS, DataConfig, ValidateConfig
from recsys_lab.data import movielens, weights
from recsys_lab.data.files import load_files
from recsys_lab.data.movielens import load_movielens_100k
from recsys_lab.data.guardrails import ValidationReport, clean, validate
from recsys_lab.data.tables import Tables
from recsys_lab.data.warehouse import Snapshot, ingest
from recsys_lab.errors import ConfigError

__all__ = ["weight_range", "load", "until", "update_source", "load_checked"]


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
    tables = load_movielens_100k(cfg.path, warehouse=cfg.warehouse) if cfg.source == SOURCE_MOVIELENS else load_files(cfg)
    return (tables if cfg.until is None else until(tables, cfg.until)), weight_range(cfg)


def until(tables: Tables, cutoff: str) -> Tables:
    """The tables as of a past date: only the interactions before ``cutoff`` (``data.until``).

    Parameters
    ----------
    tables : Tables
        As loaded.
    cutoff : str
        ISO date or datetime; UTC when it carries no offset.

    Returns
    -------
    Tables
        The same tables with ``interactions`` filtered to ``ts < cutoff`` (users and items unchanged).

    Raises
    ------
    ConfigError
        The log has no timestamps (a cut-off needs them).
    """
    if not tables.has_time:
        raise ConfigError("the interaction log has no time column: a cut-off needs timestamps", parameter="data.until")
    t = datetime.fromisoformat(cutoff)
    t = t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)
    return replace(tables, interactions=tables.interactions.filter(pl.col("ts") < t))


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


def load_checked(cfg: DataConfig, checks: ValidateConfig) -> tuple[Snapshot, ValidationReport]:
    """Load the configured source, run the data guardrails, and store an immutable warehouse snapshot (a no-op
    when the data is unchanged).

    Parameters
    ----------
    cfg : DataConfig
        The source, its column mapping, the positive rule and the warehouse folder.
    checks : ValidateConfig
        Which guardrails warn instead of failing, and their bounds.

    Returns
    -------
    snapshot : Snapshot
    report : ValidationReport

    Raises
    ------
    DataFileError, DownloadError
        The source cannot be read (see :mod:`recsys_lab.data.movielens`, :mod:`recsys_lab.data.files`).
    DataValidationError
        A fail-level guardrail found problems (every failed check is listed); nothing is stored.
    """
    tables, rng = load(cfg)
    report = validate(tables.interactions, tables.users, tables.items, checks, weight_range=rng,
                      positive_threshold=weights.positive_threshold(cfg), weight_transform=cfg.weight_transform,
                      source=tables.source, has_time=tables.has_time)
    snapshot = ingest({"interactions": clean(tables.interactions, has_time=tables.has_time), "users": tables.users,
                       "items": tables.items}, cfg.warehouse, source=tables.source)
    return snapshot, report
