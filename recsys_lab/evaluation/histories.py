"""Each user's items in time order, as a ragged array (the cold-start protocols' picks and targets)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsys_lab.errors import DataError
from recsys_lab.models.foldin import _ranges

__all__ = ["Histories"]


@dataclass(frozen=True)
class Histories:
    """Each user's items in time order, as a ragged array.

    Attributes
    ----------
    users : ndarray of shape (n,), int64
        Internal user indices.
    indptr : ndarray of shape (n + 1,), int64
        ``items[indptr[r]:indptr[r + 1]]`` are the items of ``users[r]``, oldest first.
    items : ndarray of shape (indptr[-1],), int64
        Internal item indices; each (user, item) pair appears once, at its first occurrence.
    """

    users: np.ndarray
    indptr: np.ndarray
    items: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """Items per user, shape (n,), int64."""
        return np.diff(self.indptr)

    @classmethod
    def from_arrays(cls, user_idx: np.ndarray, item_idx: np.ndarray, ts: np.ndarray, *,
                    users: np.ndarray | None = None) -> "Histories":
        """Build from parallel columns (e.g. ``frame["user_idx"].to_numpy()`` of an interactions frame).

        Parameters
        ----------
        user_idx, item_idx : ndarray of shape (n_rows,), int
        ts : ndarray of shape (n_rows,)
            Anything sortable (datetime64, epoch seconds). Ties keep the input order (stable sort).
        users : ndarray of int, optional
            Keep only these users, in this order (users absent from the rows get empty histories).
            Default: every user present, ascending.

        Returns
        -------
        Histories
            Each user's distinct items in time order (a repeated item kept at its first interaction).

        Raises
        ------
        DataError
            The three columns differ in length.
        """
        u = np.asarray(user_idx, dtype=np.int64)
        it = np.asarray(item_idx, dtype=np.int64)
        t = np.asarray(ts)
        if not (len(u) == len(it) == len(t)):
            raise DataError(f"user_idx, item_idx, ts: expected equal lengths, got {len(u)}, {len(it)}, {len(t)}")
        order = np.lexsort((np.arange(len(u)), t, u))
        u, it = u[order], it[order]
        pair = np.stack([u, it], axis=1)
        _, first = np.unique(pair, axis=0, return_index=True)
        keep = np.zeros(len(u), bool)
        keep[first] = True
        u, it = u[keep], it[keep]
        users = np.unique(u) if users is None else np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            return cls(users=users, indptr=np.zeros(1, np.int64), items=np.empty(0, np.int64))
        lo = np.searchsorted(u, users, side="left")
        hi = np.searchsorted(u, users, side="right")
        lengths = hi - lo
        idx = _ranges(lo, hi)
        return cls(users=users, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   items=it[idx.astype(np.int64)])

    @classmethod
    def from_lists(cls, lists: list, users: np.ndarray | None = None) -> "Histories":
        """Build from one sequence of item indices per user (oldest first).

        Parameters
        ----------
        lists : list of sequences of int
            Internal item indices per user, oldest first (kept as given: no deduplication).
        users : ndarray of int, optional
            User index of each list (default ``0 .. len(lists) - 1``).

        Returns
        -------
        Histories
        """
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        items = np.concatenate([np.asarray(x, np.int64) for x in lists]) if lists else np.empty(0, np.int64)
        users = np.arange(len(lists)) if users is None else np.asarray(users, np.int64)
        return cls(users=users, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), items=items)

    def window(self, rows: np.ndarray, start: np.ndarray, stop: np.ndarray, n_items: int) -> sp.csr_matrix:
        """A slice of each selected history as a sparse matrix (e.g. the first n picks, or the rest).

        Parameters
        ----------
        rows : ndarray of int
            Positions in :attr:`users` of the histories to slice.
        start, stop : ndarray of int, shape (len(rows),)
            Per-row positions (oldest first) of the slice ``[start, stop)``.
        n_items : int
            Number of columns (the catalogue size).

        Returns
        -------
        csr_matrix of shape (len(rows), n_items), float32
            Ones at the items of each row's slice.
        """
        a = self.indptr[rows] + start
        b = self.indptr[rows] + stop
        lengths = np.maximum(b - a, 0)
        idx = _ranges(a, np.maximum(a, b))
        m = sp.csr_matrix((np.ones(len(idx), np.float32), self.items[idx.astype(np.int64)],
                           np.concatenate([[0], np.cumsum(lengths)])), shape=(len(rows), n_items))
        m.sum_duplicates()
        return m

