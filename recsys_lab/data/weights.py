"""The weight transform and the positive rule, once: a Polars expression and DuckDB SQL for each.

A logged weight (a rating, a play count) is transformed (``data.weight_transform``: ``none`` or ``log1p``)
before features, splits and models see it; an interaction is a positive when its transformed weight is at least
the threshold in force (:func:`positive_threshold`).
"""

from __future__ import annotations

import polars as pl

from recsys_lab.config import SOURCE_MOVIELENS, WEIGHT_TRANSFORMS, DataConfig
from recsys_lab.data import movielens
from recsys_lab.errors import ConfigError

__all__ = ["transform", "transform_sql", "positive_threshold", "is_positive", "is_positive_sql"]

_SQL = {"none": "{c}", "log1p": "ln(1 + {c})"}
"""DuckDB text of each transform of :data:`recsys_lab.config.WEIGHT_TRANSFORMS` over column ``{c}``."""


def _known(name: str) -> str:
    if name not in WEIGHT_TRANSFORMS:
        raise ConfigError(f"expected one of {WEIGHT_TRANSFORMS}, got {name!r}", parameter="data.weight_transform")
    return name


def transform(name: str, column: str = "weight") -> pl.Expr:
    """The weight transform as a Polars expression (named ``column``).

    Parameters
    ----------
    name : str
        ``data.weight_transform``: ``"none"`` or ``"log1p"``.
    column : str
        The raw weight column (default ``weight``).

    Returns
    -------
    pl.Expr
        ``log1p(column)`` or the column unchanged.

    Raises
    ------
    ConfigError
        An unknown transform.
    """
    return pl.col(column).log1p() if _known(name) == "log1p" else pl.col(column)


def transform_sql(name: str, column: str = "weight") -> str:
    """The weight transform as DuckDB SQL (the same numbers as :func:`transform`).

    Parameters
    ----------
    name : str
        One of :data:`recsys_lab.config.WEIGHT_TRANSFORMS`.
    column : str
        Name of the logged weight's column (default ``weight``).

    Returns
    -------
    str
        ``ln(1 + column)`` or ``column``.

    Raises
    ------
    ConfigError
        An unknown transform.
    """
    return _SQL[_known(name)].format(c=column)


def positive_threshold(cfg: DataConfig) -> float:
    """The positive threshold in force, on the transformed weight.

    Parameters
    ----------
    cfg : DataConfig
        ``config.data``.

    Returns
    -------
    float
        ``positive_threshold`` when set, else the MovieLens preset's (ratings >= 4) or 0.0 for ``files`` (every
        logged interaction is a positive).
    """
    if cfg.positive_threshold is not None:
        return float(cfg.positive_threshold)
    return movielens.POSITIVE_THRESHOLD if cfg.source == SOURCE_MOVIELENS else 0.0


def is_positive(threshold: float, *, transform_name: str = "none", column: str = "weight") -> pl.Expr:
    """The positive rule as a Polars expression: transformed weight ``>= threshold``.

    Parameters
    ----------
    threshold : float
        :func:`positive_threshold`.
    transform_name : str
        Transform still to apply to ``column`` (default ``"none"``: the weights are transformed already).
    column : str
        Weight column (default ``weight``).

    Returns
    -------
    pl.Expr
        Boolean.

    Raises
    ------
    ConfigError
        An unknown transform.
    """
    return transform(transform_name, column) >= threshold


def is_positive_sql(threshold: float | str, *, transform_name: str = "none", column: str = "weight") -> str:
    """The positive rule as DuckDB SQL: transformed weight ``>= threshold``.

    Parameters
    ----------
    threshold : float or str
        :func:`positive_threshold`, or a placeholder such as ``"?"`` for a bound parameter.
    transform_name : str
        Transform to apply to ``column`` (default ``"none"``).
    column : str
        Weight column (default ``weight``).

    Returns
    -------
    str
        A boolean SQL expression, e.g. ``ln(1 + weight) >= 0.5``.

    Raises
    ------
    ConfigError
        An unknown transform.
    """
    return f"{transform_sql(transform_name, column)} >= {threshold}"
