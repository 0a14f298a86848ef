"""Exploration queries over a warehouse snapshot: DuckDB SQL in, Polars frames out.

Each helper is one SQL query on the snapshot's canonical tables (``interactions``, ``users``, ``items``), so
the notebook stays thin and the same numbers are available to tests and reports.
"""

from __future__ import annotations

import polars as pl

from recsys_lab.data.warehouse import Snapshot
from recsys_lab.errors import ConfigError

__all__ = ["summary", "interactions_over_time", "user_activity", "item_popularity", "weight_distribution",
           "category_shares", "cold_start_by_period"]

_PERIODS = ("day", "week", "month", "quarter", "year")


def _period(every: str) -> str:
    if every not in _PERIODS:
        raise ConfigError(f"expected one of {_PERIODS}, got {every!r}", parameter="every")
    return every


def summary(snap: Snapshot) -> pl.DataFrame:
    """One row: interactions, users, items, first and last timestamp, density (interactions / users*items).

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.

    Returns
    -------
    pl.DataFrame
        ``interactions, users, items, first_ts, last_ts, density`` (density a float in [0, 1]).
    """
    return snap.sql("""
        SELECT count(*) AS interactions, count(DISTINCT user_id) AS users, count(DISTINCT item_id) AS items,
               min(ts) AS first_ts, max(ts) AS last_ts,
               count(*) / (count(DISTINCT user_id) * count(DISTINCT item_id))::DOUBLE AS density
        FROM interactions""")


def interactions_over_time(snap: Snapshot, every: str = "week") -> pl.DataFrame:
    """Per period (``day``, ``week``, ``month``, ...): ``period, interactions, active_users, active_items``.

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.
    every : str
        ``day``, ``week`` (default), ``month``, ``quarter`` or ``year``.

    Returns
    -------
    pl.DataFrame
        One row per period with interactions, sorted by ``period`` (the period's start).

    Raises
    ------
    ConfigError
        Another value of ``every``.
    """
    return snap.sql(f"""
        SELECT date_trunc('{_period(every)}', ts) AS period, count(*) AS interactions,
               count(DISTINCT user_id) AS active_users, count(DISTINCT item_id) AS active_items
        FROM interactions GROUP BY ALL ORDER BY period""")


def user_activity(snap: Snapshot) -> pl.DataFrame:
    """Interactions per user, most active first: ``user_id, interactions``.

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.

    Returns
    -------
    pl.DataFrame
        One row per user; ties ordered by ``user_id``.
    """
    return snap.sql("SELECT user_id, count(*) AS interactions FROM interactions GROUP BY ALL "
                    "ORDER BY interactions DESC, user_id")


def item_popularity(snap: Snapshot) -> pl.DataFrame:
    """The long tail: ``rank (1 = most popular), item_id, title, interactions, cumulative_share``.

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.

    Returns
    -------
    pl.DataFrame
        One row per item with interactions; ``title`` null when the items table lacks the item;
        ``cumulative_share`` in (0, 1], the share of interactions held by items of this rank or better.
    """
    return snap.sql("""
        WITH c AS (SELECT item_id, count(*) AS interactions FROM interactions GROUP BY ALL)
        SELECT row_number() OVER (ORDER BY interactions DESC, c.item_id) AS rank, c.item_id, i.title,
               interactions, sum(interactions) OVER (ORDER BY interactions DESC, c.item_id) / sum(interactions) OVER ()
                   AS cumulative_share
        FROM c LEFT JOIN items i USING (item_id) ORDER BY rank""")


def weight_distribution(snap: Snapshot, bins: int = 20) -> pl.DataFrame:
    """Ratings or weights: exact values when there are few distinct ones, else ``bins`` equal-width bins.

    Returns ``weight, interactions, share``.

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.
    bins : int
        Number of equal-width bins when there are more than ``bins`` distinct weights (default 20).

    Returns
    -------
    pl.DataFrame
        ``weight`` (the value, or the bin's lower edge), ``interactions`` and ``share`` (in [0, 1]), sorted by
        weight.
    """
    distinct = snap.sql("SELECT count(DISTINCT weight) AS n FROM interactions")["n"][0]
    if distinct <= bins:
        return snap.sql("SELECT weight, count(*) AS interactions, count(*) / sum(count(*)) OVER () AS share "
                        "FROM interactions GROUP BY ALL ORDER BY weight")
    return snap.sql(f"""
        WITH b AS (SELECT min(weight) AS lo, (max(weight) - min(weight)) / {bins} AS w FROM interactions)
        SELECT lo + w * least(floor((weight - lo) / nullif(w, 0)), {bins - 1}) AS weight, count(*) AS interactions,
               count(*) / sum(count(*)) OVER () AS share
        FROM interactions, b GROUP BY ALL ORDER BY weight""")


def category_shares(snap: Snapshot, column: str, table: str = "items") -> pl.DataFrame:
    """Share of interactions per value of a user or item column (list columns count each element).

    Parameters
    ----------
    snap : Snapshot
    column : str
        Column of ``table`` (e.g. ``"genre"``, ``"occupation"``).
    table : str
        ``"items"`` or ``"users"``.

    Returns
    -------
    pl.DataFrame
        ``value, interactions, share`` sorted by share, descending.

    Raises
    ------
    ConfigError
        Unknown table or column (the message lists the available columns).
    """
    if table not in ("items", "users"):
        raise ConfigError(f"expected 'items' or 'users', got {table!r}", parameter="table")
    cols = snap.sql(f"SELECT * FROM {table} LIMIT 0").columns
    if column not in cols:
        raise ConfigError(f"no column {column!r} in {table}; available: {cols}", parameter="column")
    key = "item_id" if table == "items" else "user_id"
    kind = snap.sql(f"SELECT typeof({column}) AS t FROM {table} LIMIT 1")["t"][0]
    value = f"unnest(t.{column})" if kind.endswith("[]") else f"t.{column}"
    return snap.sql(f"""
        WITH v AS (SELECT {value} AS value FROM interactions i JOIN {table} t USING ({key}))
        SELECT value::VARCHAR AS value, count(*) AS interactions, count(*) / sum(count(*)) OVER () AS share
        FROM v WHERE value IS NOT NULL GROUP BY ALL ORDER BY share DESC, value""")


def cold_start_by_period(snap: Snapshot, every: str = "month") -> pl.DataFrame:
    """Per period: share of interactions by users and by items seen for the first time in that period.

    This is the share a model trained at the start of the period could not personalise (cold users) or
    could only place by side features (cold items). Returns ``period, interactions, cold_user_share,
    cold_item_share``.

    Parameters
    ----------
    snap : Snapshot
        A warehouse snapshot.
    every : str
        ``day``, ``week``, ``month`` (default), ``quarter`` or ``year``.

    Returns
    -------
    pl.DataFrame
        One row per period, sorted; the shares are in [0, 1].

    Raises
    ------
    ConfigError
        Another value of ``every``.
    """
    p = _period(every)
    return snap.sql(f"""
        WITH first AS (
            SELECT user_id, min(date_trunc('{p}', ts)) AS user_start FROM interactions GROUP BY ALL),
        ifirst AS (
            SELECT item_id, min(date_trunc('{p}', ts)) AS item_start FROM interactions GROUP BY ALL)
        SELECT date_trunc('{p}', ts) AS period, count(*) AS interactions,
               avg((date_trunc('{p}', ts) = user_start)::INT) AS cold_user_share,
               avg((date_trunc('{p}', ts) = item_start)::INT) AS cold_item_share
        FROM interactions JOIN first USING (user_id) JOIN ifirst USING (item_id)
        GROUP BY ALL ORDER BY period""")
