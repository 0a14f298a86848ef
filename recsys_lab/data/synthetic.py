"""Seeded synthetic interaction logs at any size (play-count logs for scale tests and benchmarks).

The generative model, fully vectorised (numpy; no Python loop over users or interactions):

- **Item popularity** follows Zipf's law: the item of popularity rank ``r`` (1-based) is drawn with weight
  ``r ** -zipf_exponent`` (Zipf 1949; the long tail of recommender catalogues, Celma, "Music Recommendation
  and Discovery", 2010, ch. 4). Ranks are a random permutation of the item ids.
- **Categories**: each item belongs to one of ``n_categories`` categories, uniformly at random.
- **User activity** is lognormal (``sigma = activity_sigma``): user ``u`` gets ``1 + Multinomial(K - n_users,
  w_u / sum w)`` interactions with ``w_u ~ LogNormal(0, sigma)``, so every user has at least one row and the
  rows add up to exactly ``K``.
- **Taste**: each user has two favourite categories (drawn in proportion to category popularity). An
  interaction picks its category from the first favourite with probability ``taste * 0.6``, the second with
  ``taste * 0.4``, else from the whole catalogue; within the chosen set the item is drawn by its Zipf weight.
  This gives learned embeddings a structure to find (pure popularity would give rank-1 vectors).
- **Play count** (the ``weight`` column): ``Geometric(0.5)``, i.e. 1, 2, 3, ... with probability halving.
- **Timestamps**: distinct milliseconds spread uniformly over 365 days from ``start`` (UTC), so no two rows
  share ``(user_id, item_id, ts)`` and the ``duplicates`` guardrail stays quiet.

Files written by :func:`write` are read by ``[data] source = "files"``; :func:`config_snippet` prints the
matching TOML. ``recsys-lab generate`` wraps both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl

from recsys_lab._fs import atomic_write_with
from recsys_lab.errors import ConfigError

__all__ = ["SyntheticLog", "generate", "write", "config_snippet"]

_YEAR_MS = 365 * 24 * 3600 * 1000


@dataclass(frozen=True)
class SyntheticLog:
    """A generated log.

    Attributes
    ----------
    interactions : polars.DataFrame
        ``user_id`` (Int64, 0..n_users-1), ``item_id`` (Int64, 0..n_items-1), ``ts`` (Datetime[ms, UTC]),
        ``weight`` (Int32 play count >= 1); one row per interaction, ``n_interactions`` rows.
    items : polars.DataFrame
        ``item_id``, ``title`` (Utf8), ``category`` (Utf8, ``"c07"``...); one row per item.
    """

    interactions: pl.DataFrame
    items: pl.DataFrame


def _check_sizes(n_users: int, n_items: int, n_interactions: int, n_categories: int) -> None:
    for name, value in (("users", n_users), ("items", n_items), ("categories", n_categories)):
        if value < 1:
            raise ConfigError(f"need at least 1 {name[:-1]}, got {value}", parameter=name)
    if n_interactions < n_users:
        raise ConfigError(f"need at least one interaction per user: {n_interactions} interactions < "
                          f"{n_users} users", parameter="interactions")
    if n_interactions > _YEAR_MS:
        raise ConfigError(f"at most {_YEAR_MS} interactions (distinct milliseconds in a year), "
                          f"got {n_interactions}", parameter="interactions")


def generate(n_users: int, n_items: int, n_interactions: int, *, seed: int = 0, zipf_exponent: float = 1.0,
             activity_sigma: float = 1.0, n_categories: int = 50, taste: float = 0.8,
             start: datetime = datetime(2024, 1, 1, tzinfo=timezone.utc)) -> SyntheticLog:
    """Generate a play-count interaction log (see the module docstring for the model).

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Sizes; every user gets at least one interaction, so ``n_interactions >= n_users``.
    seed : int
        Seed of ``numpy.random.default_rng``: the same arguments give the same log.
    zipf_exponent : float
        Exponent ``a`` of item popularity ``rank ** -a`` (default 1.0).
    activity_sigma : float
        Sigma of the lognormal user activity (default 1.0).
    n_categories : int
        Number of item categories (default 50).
    taste : float
        Share of interactions drawn from the user's two favourite categories (default 0.8; 0: popularity only).
    start : datetime
        Start of the 365-day window of timestamps (default 2024-01-01 UTC).

    Returns
    -------
    SyntheticLog

    Raises
    ------
    ConfigError
        Sizes below 1, fewer interactions than users, ``taste`` outside [0, 1] or a negative exponent.
    """
    _check_sizes(n_users, n_items, n_interactions, n_categories)
    if not 0.0 <= taste <= 1.0:
        raise ConfigError(f"taste must be in [0, 1], got {taste}", parameter="taste")
    if zipf_exponent < 0 or activity_sigma < 0:
        raise ConfigError("zipf_exponent and activity_sigma must be >= 0", parameter="zipf_exponent")
    rng = np.random.default_rng(seed)
    k = int(n_interactions)

    # items: Zipf weights over a random permutation of ranks, uniform categories
    rank = rng.permutation(n_items) + 1
    weight = rank.astype(np.float64) ** -zipf_exponent
    category = rng.integers(0, n_categories, n_items)
    by_cat = np.argsort(category, kind="stable")
    cum = np.cumsum(weight[by_cat])
    total = cum[-1]
    bounds = np.searchsorted(category[by_cat], np.arange(n_categories + 1))  # first position of each category
    lo = np.concatenate([[0.0], cum])[bounds[:-1]]
    hi = np.concatenate([[0.0], cum])[bounds[1:]]
    cat_weight = hi - lo

    # users: lognormal activity, at least one row each; two favourite categories by popularity
    activity = rng.lognormal(0.0, activity_sigma, n_users)
    counts = 1 + rng.multinomial(k - n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    favs = rng.choice(n_categories, size=(n_users, 2), p=cat_weight / total)

    # per interaction: category (favourite 1, favourite 2 or global), then an item by Zipf weight within it
    r = rng.random(k)
    which = np.where(r < taste * 0.6, 0, np.where(r < taste, 1, -1))
    cat = np.where(which >= 0, favs[user, np.maximum(which, 0)], -1)
    glob = cat < 0
    c = np.maximum(cat, 0)
    a = np.where(glob, 0.0, lo[c])
    b = np.where(glob, total, hi[c])
    x = a + rng.random(k) * (b - a)
    pos = np.minimum(np.searchsorted(cum, x, side="right"), n_items - 1)
    item = by_cat[pos].astype(np.int64)

    # distinct millisecond timestamps over the year, in random order
    ts = np.sort(rng.integers(0, _YEAR_MS - k + 1, k)) + np.arange(k)
    ts = rng.permutation(ts) + int(start.timestamp() * 1000)
    plays = rng.geometric(0.5, k).astype(np.int32)

    inter = pl.DataFrame({"user_id": user, "item_id": item,
                          "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC")),
                          "weight": plays})
    names = np.char.add("c", np.char.zfill(np.arange(n_categories).astype(str), 2))
    items = pl.DataFrame({"item_id": np.arange(n_items, dtype=np.int64), "category": names[category]})
    items = items.with_columns(pl.format("item {} ({})", "item_id", "category").alias("title"))
    return SyntheticLog(interactions=inter, items=items.select("item_id", "title", "category"))


def write(log: SyntheticLog, out_dir: str | Path) -> dict[str, Path]:
    """Write ``interactions.parquet`` and ``items.parquet`` into ``out_dir`` (atomically, file by file).

    Parameters
    ----------
    log : SyntheticLog
        A generated log.
    out_dir : str or Path
        Destination directory.

    Returns
    -------
    dict
        ``{"interactions": path, "items": path}``.
    """
    out = Path(out_dir)
    paths = {"interactions": out / "interactions.parquet", "items": out / "items.parquet"}
    atomic_write_with(paths["interactions"], lambda p: log.interactions.write_parquet(p))
    atomic_write_with(paths["items"], lambda p: log.items.write_parquet(p))
    return paths


def config_snippet(paths: dict[str, Path]) -> str:
    """TOML ``[data]`` section reading the files of :func:`write` (play counts, log1p weights; every play
    counts as a positive).

    Parameters
    ----------
    paths : dict of str to Path
        :func:`write`'s result (``interactions`` and ``items``); written as absolute paths.

    Returns
    -------
    str
        TOML text, newline-terminated.
    """
    return (
        "[data]\n"
        'source = "files"\n'
        f'interactions = "{Path(paths["interactions"]).resolve()}"\n'
        f'items = "{Path(paths["items"]).resolve()}"\n'
        'weight_col = "weight"\n'
        'weight_transform = "log1p"\n'
        "positive_threshold = 0.5\n"
        'title_col = "title"\n'
    )
