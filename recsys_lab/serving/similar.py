"""A run's item space: the items most similar to an item ("more like this") and the item vectors with titles and
categories for a map of the catalogue."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import warnings

import numpy as np
import polars as pl

from recsys_lab.retrieval.neighbours import similar_items
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.features import IdMap
from recsys_lab.serving.saved_run import ShortListWarning, check_k, served_run

__all__ = ["similar", "ItemSpace", "item_space"]


def similar(runs_dir: str | Path, item_id: int | str, *, k: int = 10, run: str = "production") -> pl.DataFrame:
    """The ``k`` items most similar to ``item_id`` in a run's item space, with titles ("more like this").

    Similarity returned (the item itself excluded): LightFM's own score for a user whose representation equals
    the item's embedding, ``sim(i, j) = e_i · e_j + b_j`` with ``[e_j, b_j]`` the saved folded item vector
    (:func:`recsys_lab.retrieval.neighbours.similar_items`): "people who like i get j next". It is asymmetric and
    popularity-aware through the bias ``b_j``; it is not cosine similarity. Served through the run's saved
    MIPS index when the retrain built one (large catalogues; approximate, recall measured at retrain time as
    ``ann.recall@k``), exactly otherwise (:func:`recsys_lab.evaluation.embedding_quality.inner_product_neighbours`).

    Parameters
    ----------
    runs_dir : str or Path
    item_id : int or str
        External item id.
    k : int
        Neighbours (default 10; an integer >= 1, clamped to the catalogue size minus one with a
        :class:`~recsys_lab.serving.saved_run.ShortListWarning`).
    run : str
        Run reference (default ``production``; also ``latest`` or a run id).

    Returns
    -------
    pl.DataFrame
        ``rank, item_id, title, score, path`` with ``path`` ``exact`` or ``index``.

    Raises
    ------
    RunError
        Unknown run, missing artifacts, an item id the run does not know (named; also one it cannot hold, e.g.
        text or beyond 64 bits where its ids are integers), or a run of one item.
    ConfigError
        ``k`` is not an integer >= 1, or ``item_id`` is not one integer or text.

    Warns
    -----
    ShortListWarning
        ``k`` is larger than the catalogue size minus one.
    """
    from recsys_lab.evaluation import embedding_quality as embedding

    k = check_k(k)
    item_id = item_id.item() if isinstance(item_id, np.generic) else item_id
    if isinstance(item_id, bool) or not isinstance(item_id, (int, str)):
        raise ConfigError(f"must be one item id (an integer or text), got {type(item_id).__name__} {item_id!r}",
                          parameter="item_id")
    m = served_run(runs_dir, run)
    idx, ok = m.items.lookup(np.array([item_id], dtype=object))
    if not ok[0]:
        raise RunError(f"run {m.run_id}: unknown item_id {item_id!r} ({len(m.item_ids)} items"
                       f"{_id_type(m.item_ids, item_id)})")
    if len(m.item_ids) < 2:
        raise RunError(f"run {m.run_id}: item_id {item_id!r} is its only item: no other item to compare with")
    if k > len(m.item_ids) - 1:
        warnings.warn(f"run {m.run_id}: k={k} but only {len(m.item_ids) - 1} other item(s): the list is shorter",
                      ShortListWarning, stacklevel=2)
    index = m.saved.index()
    if index is not None:
        nb, sc = similar_items(index, idx, k)
        path = "index"
    else:
        nb, sc = embedding.inner_product_neighbours(m.item_vecs, idx, k)
        path = "exact"
    ids = m.item_ids[nb[0]]
    out = pl.DataFrame({"rank": np.arange(1, len(ids) + 1), "item_id": ids, "score": sc[0].astype(np.float32),
                        "path": [path] * len(ids)})
    return out.join(m.titles(ids), on="item_id", how="left").select("rank", "item_id", "title", "score", "path")


def _id_type(ids: np.ndarray, item_id: int | str) -> str:
    """``"; its item ids are 64-bit integers"`` when ``item_id`` cannot be one of the run's integer ids."""
    if ids.dtype.kind not in "iu":
        return ""
    try:
        if -2**63 <= int(str(item_id).strip()) < 2**63:
            return ""
    except ValueError:
        pass
    return "; its item ids are 64-bit integers"


@dataclass
class ItemSpace:
    """A run's item vectors with what a reader needs to look at them.

    Attributes
    ----------
    item_ids : ndarray of shape (n_items,)
        External ids in index order.
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded vectors ``[e_j, b_j]``; ``item_vecs[:, :-1]`` is the embedding without the bias.
    table : pl.DataFrame
        ``item_id, title, category, primary`` in index order; ``category`` the item-table column (a list for
        multi-label columns), ``primary`` its first value (for colouring; null when unknown).
    """

    item_ids: np.ndarray
    item_vecs: np.ndarray
    table: pl.DataFrame

    def positions(self, ids) -> np.ndarray:  # noqa: ANN001
        """Internal indices of external ``ids`` (unknown ids dropped).

        Parameters
        ----------
        ids : iterable
            External item ids.

        Returns
        -------
        ndarray of int
            Row indices into ``item_vecs`` / ``table`` of the known ids, in the order given.
        """
        idx, ok = IdMap.from_sorted(self.item_ids, "item_id").lookup(np.asarray(list(ids)))
        return idx[ok]


def item_space(runs_dir: str | Path, *, run: str = "production", column: str = "genre") -> ItemSpace:
    """A run's item vectors with titles and a category column from its snapshot's item table.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        Run id, unique prefix, ``latest`` or ``production`` (default).
    column : str
        Item-table column used as the category (default ``genre``; all null when the table lacks it).

    Returns
    -------
    ItemSpace

    Raises
    ------
    RunError
        Unknown run or missing artifacts.
    """
    m = served_run(runs_dir, run)
    items = m.sql("SELECT * FROM items", [])
    if column not in items.columns:
        items = items.with_columns(pl.lit(None).alias(column))
    frame = pl.DataFrame({"item_id": m.item_ids}).join(items.select("item_id", "title", pl.col(column).alias("category")),
                                                       on="item_id", how="left", maintain_order="left")
    first = (pl.col("category").list.first() if isinstance(frame.schema["category"], pl.List)
             else pl.col("category").cast(pl.Utf8))
    return ItemSpace(item_ids=m.item_ids, item_vecs=m.item_vecs, table=frame.with_columns(first.alias("primary")))
