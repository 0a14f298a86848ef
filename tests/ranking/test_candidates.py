"""ranking.candidates: the union of the generators' top-N, its ranks, and the recall ceiling on a hand-made case."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.ranking.candidates import generate, labels, recall_ceiling


def _one_hot_scores(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectors whose dot products are exactly ``scores`` (user rows = scores, item vectors = identity)."""
    return scores.astype(np.float32), np.eye(scores.shape[1], dtype=np.float32)


@pytest.fixture()
def case():
    # 2 users, 6 items. Generator a ranks items 0 > 1 > 2 > ...; b ranks 5 > 4 > 3 > ... for both users.
    a = _one_hot_scores(np.tile(np.arange(6, 0, -1), (2, 1)))
    b = _one_hot_scores(np.tile(np.arange(1, 7), (2, 1)))
    seen = sp.csr_matrix(([1.0], ([1], [0])), shape=(2, 6), dtype=np.float32)  # user 1 has seen item 0
    test = sp.csr_matrix((np.ones(4), ([0, 0, 1, 1], [1, 3, 2, 5])), shape=(2, 6), dtype=np.float32)
    return {"a": a, "b": b}, seen, test


def test_the_union_of_top_n_excludes_seen_items_and_keeps_each_generators_rank(case):
    gens, seen, _ = case
    c = generate(gens, {"a": 2, "b": 1}, np.array([0, 1]), exclude=seen)
    got = {(int(c.users[r]), int(i)) for r, i in zip(c.row, c.item)}
    # user 0: a's top-2 {0, 1}, b's top-1 {5}; user 1 has seen 0: a's top-2 {1, 2}, b's {5}
    assert got == {(0, 0), (0, 1), (0, 5), (1, 1), (1, 2), (1, 5)}
    assert list(c.group_sizes) == [3, 3]
    ranks_a = {(int(c.users[r]), int(i)): float(x) for r, i, x in zip(c.row, c.item, c.ranks["a"])}
    assert ranks_a[(0, 0)] == 1 and ranks_a[(0, 1)] == 2 and ranks_a[(0, 5)] == 3  # N + 1: not proposed
    assert ranks_a[(1, 1)] == 1 and ranks_a[(1, 2)] == 2


def test_recall_ceiling_per_generator_and_in_total(case):
    gens, seen, test = case
    c = generate(gens, {"a": 2, "b": 1}, np.array([0, 1]), exclude=seen)
    # test positives: user 0 {1, 3}, user 1 {2, 5}. Inside: (0,1) by a; (1,2) by a; (1,5) by b. 3 of 4.
    assert recall_ceiling(c, test) == pytest.approx({"total": 0.75, "a": 0.5, "b": 0.25})
    assert labels(c, test).sum() == 3
    sub = c.subset(np.array([1]))
    assert list(sub.users) == [1] and recall_ceiling(sub, test) == pytest.approx({"total": 1.0, "a": 0.5, "b": 0.5})


def test_a_short_list_never_proposes_a_seen_item():
    gens = {"a": _one_hot_scores(np.array([[3.0, 2.0, 1.0]]))}
    seen = sp.csr_matrix(np.array([[1, 1, 0]], np.float32))
    c = generate(gens, {"a": 3}, np.array([0]), exclude=seen)
    assert list(c.item) == [2]
