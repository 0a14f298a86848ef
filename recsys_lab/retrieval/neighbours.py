"""Item-to-item neighbours through the candidate-generation index: "people who like i get j next"."""

from __future__ import annotations

import numpy as np

from recsys_lab.errors import ModelError
from recsys_lab.retrieval.ann import MipsIndex

__all__ = ["similar_items"]


def similar_items(index: MipsIndex, items: np.ndarray, k: int = 10, *, bias_column: int | None = -1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Item-to-item neighbours through the MIPS index: for each item, the ``k`` other items with the largest
    inner product against the item's vector used as a query.

    Similarity returned: with ``bias_column`` (default -1, the layout of
    :func:`recsys_lab.models.lightfm.embeddings`: item ``[e_j, b_j]``), the query for item ``i`` is ``[e_i, 1]``, so
    ``sim(i, j) = e_i · e_j + b_j``: the score LightFM gives ``j`` for a user whose representation equals
    ``i``'s embedding ("users who like i would get j next"). It is asymmetric and popularity-aware (``b_j``),
    not cosine similarity. With ``bias_column=None`` the raw vectors are used: ``sim(i, j) = x_i · x_j``.

    Parameters
    ----------
    index : MipsIndex
    items : ndarray of shape (n,), int64
        Internal item indices.
    k : int
        Neighbours per item (the item itself is never returned; capped at ``n_items - 1``).
    bias_column : int or None
        Column of the item bias in the index's vectors (replaced by 1 in the query), or None.

    Returns
    -------
    neighbours : ndarray of shape (n, k), int64
        Internal item indices, most similar first.
    scores : ndarray of shape (n, k), float32
        ``sim(i, j)`` as above.

    Raises
    ------
    ModelError
        Item indices outside ``[0, n_items)``.
    """
    items = np.asarray(items, dtype=np.int64).reshape(-1)
    if len(items) and (items.min() < 0 or items.max() >= index.n_items):
        bad = items[(items < 0) | (items >= index.n_items)][0]
        raise ModelError(f"item index {bad} out of range [0, {index.n_items})")
    k = min(k, index.n_items - 1)
    q = index._items[items].copy()
    if bias_column is not None:
        q[:, bias_column] = 1.0
    got, scores = index.query(q, k + 1)
    keep = got != items[:, None]
    # drop the item itself (or the last one when the item is not among its own k + 1 best)
    drop_last = keep.all(axis=1)
    keep[drop_last, -1] = False
    n = len(items)
    return got[keep].reshape(n, k), scores[keep].reshape(n, k)
