"""One contract every candidate model keeps, on the planted checkerboard (tests/models/conftest.py).

Modelled on benfred/implicit's ``RecommenderBaseTestMixin`` (tests/recommender_base_test.py): a base class holds
the checks, each candidate is a subclass that only says how to get its vectors. Every candidate ends as a pair
``(user_vecs, item_vecs)`` whose dot product is the score, ranked by ``recsys_lab.retrieval.topk.top_k``; so
the contract is checked on those vectors through that one ranking path:

- shapes: ``user_vecs`` is (n_users, d), ``item_vecs`` (n_items, d), float32, finite, with the documented d;
- seen items excluded: no item of ``train`` is in a user's top-k, and with k = n_items the excluded items
  fill the tail at -inf;
- ties: equal scores come in item order (the rule ``top_k`` documents), checked by duplicating the catalogue
  (item j and item j + n score the same for every user: j must come first), and a second call returns the same
  lists;
- the withheld diagonal: every user's top-1 unseen item is item u, the one item of its own group it has not
  seen (most-popular is exempt: it cannot learn groups; its known answer is checked instead).

Each class fits once (a class-scoped fixture) and the vectors are made read-only, so no check can change
what the next one sees.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.config import ModelConfig
from recsys_lab.evaluation.ranking import popularity_vectors
from recsys_lab.models import baselines
from recsys_lab.models import lightfm as lfm
from recsys_lab.models.foldin import FoldIn
from recsys_lab.retrieval.topk import top_k

from .conftest import Checkerboard, N


def _read_only(user_vecs: np.ndarray, item_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    user_vecs, item_vecs = np.array(user_vecs), np.array(item_vecs)  # our own copies, then frozen
    user_vecs.setflags(write=False)
    item_vecs.setflags(write=False)
    return user_vecs, item_vecs


class CandidateContract:
    """The checks; a subclass implements :meth:`vectors` and sets :attr:`dim`."""

    dim: int
    """Columns of the user and item vectors."""

    def vectors(self, board: Checkerboard) -> tuple[np.ndarray, np.ndarray]:
        """Fit on ``board.train`` and return ``(user_vecs, item_vecs)``."""
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, planted: Checkerboard) -> tuple[np.ndarray, np.ndarray]:
        return _read_only(*cls().vectors(planted))

    def test_vector_shapes(self, fitted):
        user_vecs, item_vecs = fitted
        assert user_vecs.shape == (N, self.dim) and item_vecs.shape == (N, self.dim)
        assert user_vecs.dtype == item_vecs.dtype == np.float32
        assert np.isfinite(user_vecs).all() and np.isfinite(item_vecs).all()

    def test_seen_items_are_never_recommended(self, fitted, planted):
        user_vecs, item_vecs = fitted
        seen = planted.train.toarray() > 0
        items, scores = top_k(user_vecs, item_vecs, 5, exclude=planted.train)
        assert items.shape == (N, 5) and not seen[np.arange(N)[:, None], items].any()
        # the whole catalogue: the unseen items first (finite scores, the dot products), then the seen at -inf
        items, scores = top_k(user_vecs, item_vecs, N, exclude=planted.train)
        n_unseen = N - N // 2 + 1
        for u in range(N):
            assert sorted(items[u]) == list(range(N))
            assert not seen[u, items[u, :n_unseen]].any() and seen[u, items[u, n_unseen:]].all()
            np.testing.assert_allclose(scores[u, :n_unseen], (item_vecs[items[u, :n_unseen]] @ user_vecs[u]),
                                       rtol=1e-5, atol=1e-5)
            assert np.isneginf(scores[u, n_unseen:]).all()

    def test_ties_come_in_item_order_and_the_ranking_is_repeatable(self, fitted, planted):
        user_vecs, item_vecs = fitted
        twice = np.vstack([item_vecs, item_vecs])  # item j and item j + N: equal scores for every user
        exclude = sp.hstack([planted.train, planted.train]).tocsr()
        items, scores = top_k(user_vecs, twice, 2 * N, exclude=exclude)
        for u in range(N):
            n_unseen = 2 * (N - N // 2 + 1)
            row = items[u, :n_unseen].tolist()
            pos = {j: p for p, j in enumerate(row)}
            for j in range(N):
                if j in pos:
                    assert j + N in pos and pos[j] < pos[j + N], (u, j)
            assert (np.diff(scores[u, :n_unseen]) <= 0).all()
            runs = scores[u, :n_unseen]
            for a, b, sa, sb in zip(row, row[1:], runs, runs[1:]):
                if sa == sb:
                    assert a < b, (u, a, b)  # equal scores: smaller item index first
        again, _ = top_k(user_vecs, twice, 2 * N, exclude=exclude)
        np.testing.assert_array_equal(items, again)

    def test_the_withheld_diagonal_is_recommended(self, fitted, planted):
        user_vecs, item_vecs = fitted
        items, _ = top_k(user_vecs, item_vecs, 1, exclude=planted.train)
        assert items[:, 0].tolist() == list(range(N))


class TestLightFMHybrid(CandidateContract):
    """LightFM with side features: identity plus the item's group (rows normalised, as features.py does)."""

    dim = 8 + 1  # no_components + the bias column

    def vectors(self, board):
        ident = sp.identity(N, dtype=np.float32, format="csr")
        side = sp.csr_matrix(np.eye(2, dtype=np.float32)[board.group])
        items = sp.hstack([ident, side]).tocsr()
        items = sp.csr_matrix(sp.diags(1.0 / np.asarray(items.sum(axis=1)).ravel()) @ items, dtype=np.float32)
        # LightFM's Cython loops need writable buffers: it gets a copy (it does not write to it)
        res = lfm.fit(board.train_copy(), ident, items, ModelConfig(epochs=30, num_threads=1, no_components=8))
        return lfm.embeddings(res.model, ident, items)


class TestLightFMCF(CandidateContract):
    """LightFM-CF: identity features only."""

    dim = 8 + 1

    def vectors(self, board):
        ident = sp.identity(N, dtype=np.float32, format="csr")
        res = lfm.fit(board.train_copy(), ident, ident, ModelConfig(epochs=30, num_threads=1, no_components=8))
        return lfm.embeddings(res.model, ident, ident)


class TestEASE(CandidateContract):
    dim = N  # user rows of X against the item-item weights

    def vectors(self, board):
        res = baselines.fit_ease(board.train, board.train, None)
        return res.user_vecs, res.item_vecs


class TestALS(CandidateContract):
    """implicit ALS with as many factors as the planted rank (2): with 8 or more it also fits the withheld zeros
    and misses one or two diagonal items, depending on the seed."""

    dim = 2

    def vectors(self, board):
        res = baselines.fit_als(board.train, board.train, None, grid=((2, 0.01, 10.0),), num_threads=1, seed=0)
        return res.user_vecs, res.item_vecs


class TestMostPopular(CandidateContract):
    dim = 1

    def vectors(self, board):
        return popularity_vectors(board.train)

    def test_the_withheld_diagonal_is_recommended(self, fitted, planted):
        """Exempt: most-popular ranks by training counts and cannot learn the groups. On the checkerboard every
        item has the same count (N / 2 - 1), so every score ties and the tie rule decides: each user gets its
        unseen items in item order, and the top-1 is the smallest unseen item, not item u."""
        user_vecs, item_vecs = fitted
        assert (item_vecs[:, 0] == N // 2 - 1).all()
        items, _ = top_k(user_vecs, item_vecs, N - N // 2 + 1, exclude=planted.train)
        seen = planted.train.toarray() > 0
        for u in range(N):
            assert items[u].tolist() == np.flatnonzero(~seen[u]).tolist()


def _group_items() -> np.ndarray:
    """Fixed item vectors for fold-in: item j points along its group's axis, bias column 0."""
    group = (np.arange(N) >= N // 2).astype(np.int64)
    return np.c_[np.eye(2, dtype=np.float32)[group], np.zeros(N, np.float32)]


class _FoldInContract(CandidateContract):
    """models.foldin.FoldIn over fixed item vectors: the user vectors are folded in from ``train``."""

    dim = 3
    method: str

    def vectors(self, board):
        items = _group_items()
        # FoldIn.users writes to its argument's index arrays (see TestFoldInMean below): it gets a copy
        return FoldIn(items, method=self.method, seed=0).users(board.train_copy()), items


class TestFoldInMean(_FoldInContract):
    method = "mean"

    def test_users_leaves_the_callers_matrix_unchanged(self):
        """FoldIn.users sorted and compacted its argument in place (sp.csr_matrix(m, dtype=...) shared indices/indptr
        with the caller, then sum_duplicates / eliminate_zeros)."""
        m = sp.csr_matrix((np.array([1.0, 0.0, 2.0], np.float32), np.array([2, 0, 1]), np.array([0, 3])),
                          shape=(1, N))
        before = m.indices.copy(), m.indptr.copy(), m.data.copy()
        FoldIn(_group_items()).users(m)
        for got, want in zip((m.indices, m.indptr, m.data), before):
            np.testing.assert_array_equal(got, want)


class TestFoldInRidge(_FoldInContract):
    method = "ridge"


class TestFoldInBPR(_FoldInContract):
    method = "bpr"
