"""The canonical tables every source is loaded into (:class:`Tables`)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

__all__ = ["Tables"]


@dataclass(frozen=True)
class Tables:
    """The canonical tables every source is loaded into, as Polars frames.

    Attributes
    ----------
    interactions : pl.DataFrame
        ``user_id, item_id`` (Int64 or Utf8), ``weight: Float64`` (rating, or raw implicit weight such as a
        play count), ``ts: Datetime[us, UTC]``. MovieLens 100k: 100,000 rows, weight = rating 1..5.
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
