"""hnswlib graphs as plain arrays: the checks that make a graph read from a run folder safe to hand to hnswlib.

hnswlib restores a graph from its own state (scalars and byte arrays) without checking it; a crafted neighbour id
would make its C++ code read outside its buffers. :func:`checked_state` checks every size, count and id first.
Layout (hnswlib 0.8, ``hnswalg.h``): per element, level 0 holds ``[count: uint32][max_M0 ids: uint32][vector:
dim float32][label: uint64]``; upper levels hold ``level`` blocks of ``[count: uint32][max_M ids: uint32]``.
"""

from __future__ import annotations

import json

import numpy as np

from recsys_lab.errors import ModelError

__all__ = ["STATE_ARRAYS", "checked_state", "to_arrays", "from_arrays"]

STATE_ARRAYS = ("data_level0", "link_lists", "element_levels", "label_lookup_external", "label_lookup_internal")
"""The array fields of hnswlib's state (the rest are scalars)."""


def to_arrays(state: dict) -> dict[str, np.ndarray]:
    """hnswlib's state as arrays: ``hnsw_state`` (its scalars as a JSON string) and ``hnsw_<name>`` (its arrays).

    Parameters
    ----------
    state : dict
        ``hnswlib.Index.__getstate__()[0]``.

    Returns
    -------
    dict of str to ndarray
        No object arrays: loadable with ``allow_pickle=False``.
    """
    out = {f"hnsw_{key}": np.asarray(state[key]) for key in STATE_ARRAYS}
    out["hnsw_state"] = np.array(json.dumps({key: v for key, v in state.items() if key not in STATE_ARRAYS}))
    return out


def from_arrays(arrays: dict) -> dict | None:
    """The state :func:`to_arrays` wrote, unchecked (check it with :func:`checked_state` before use).

    Parameters
    ----------
    arrays : mapping of str to ndarray
        Arrays that may hold ``hnsw_state`` and the ``hnsw_<name>`` arrays.

    Returns
    -------
    dict or None
        None when ``arrays`` hold no graph.

    Raises
    ------
    KeyError, ValueError
        A graph array missing, or ``hnsw_state`` not JSON.
    """
    if "hnsw_state" not in arrays:
        return None
    state = json.loads(str(np.asarray(arrays["hnsw_state"])))
    state.update({key: np.asarray(arrays[f"hnsw_{key}"]) for key in STATE_ARRAYS})
    return state


def checked_state(state: dict, items: np.ndarray) -> dict:
    """Check an hnswlib state read from arrays and put the item vectors in it.

    Sizes and layout must be those hnswlib 0.8 writes for ``items`` (``ip`` space, no deletions); every neighbour
    count and id of every level is checked against the number of items, and the labels must be a permutation of
    the items. The vectors stored in the state are replaced by ``items``: nothing but the graph's structure comes
    from the arrays.

    Parameters
    ----------
    state : dict
        hnswlib's ``__getstate__()[0]``: scalars plus the arrays named in :data:`STATE_ARRAYS`.
    items : ndarray of shape (n_items, d), float32
        The index's item vectors.

    Returns
    -------
    dict
        The state to pass to ``hnswlib.Index.__setstate__``.

    Raises
    ------
    ModelError
        Any size, id, level or label that does not fit.
    """
    n, d = items.shape
    s = {key: state[key] for key in state}
    m, m0 = int(s["M"]), int(s["max_M0"])
    links0, links = m0 * 4 + 4, int(s["max_M"]) * 4 + 4
    per = links0 + d * 4 + 8
    levels = np.asarray(s["element_levels"])
    expect = {"space": "ip", "dim": d, "max_elements": n, "cur_element_count": n, "max_M": m, "max_M0": 2 * m,
              "offset_level0": 0, "offset_data": links0, "label_offset": links0 + d * 4, "size_data_per_element": per,
              "size_links_per_element": links, "has_deletions": False, "normalize": False}
    bad = [key for key, value in expect.items() if s.get(key) != value]
    if bad or not 2 <= m <= 1024 or levels.shape != (n,) or levels.dtype.kind != "i":
        raise ModelError(f"index arrays: hnsw graph does not match {n} x {d} items ({', '.join(bad) or 'levels'})")
    if levels.min() < 0 or levels.max() > 64 or int(s["max_level"]) != int(levels.max()) \
            or not 0 <= int(s["enterpoint_node"]) < n or levels[int(s["enterpoint_node"])] != levels.max():
        raise ModelError("index arrays: hnsw graph levels or entry point out of range")
    level0 = np.asarray(s["data_level0"]).view(np.uint8)
    upper = np.asarray(s["link_lists"]).view(np.uint8)
    if level0.size != n * per or upper.size != int(levels.sum()) * links:
        raise ModelError("index arrays: hnsw graph arrays have the wrong size")
    for block, cap in ((level0.reshape(n, per)[:, :links0], m0), (upper.reshape(-1, links), m)):
        count = block[:, :4].copy().view(np.uint32)[:, 0]
        ids = block[:, 4:].copy().view(np.uint32)
        if len(count) and (count.max() > cap or (ids >= n)[np.arange(cap) < count[:, None]].any()):
            raise ModelError("index arrays: hnsw graph has a neighbour list out of range")
    ext, internal = np.asarray(s["label_lookup_external"]), np.asarray(s["label_lookup_internal"])
    rows = level0.reshape(n, per).copy()
    labels = rows[:, links0 + d * 4:].copy().view(np.uint64)[:, 0]
    if not (np.array_equal(np.sort(labels), np.arange(n)) and ext.shape == internal.shape == (n,)
            and np.array_equal(np.sort(internal), np.arange(n)) and np.array_equal(labels[internal], ext)):
        raise ModelError("index arrays: hnsw graph labels are not a permutation of the items")
    rows[:, links0:links0 + d * 4] = np.ascontiguousarray(items[labels.astype(np.int64)], np.float32).view(np.uint8)
    s["data_level0"] = rows.reshape(-1).view(np.int8)
    s["link_lists"] = upper.view(np.int8)
    return s
