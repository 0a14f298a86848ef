"""Beyond-accuracy, fairness and embedding-quality metrics against small hand-computed cases."""

import numpy as np
import pytest

from recsys_lab.evaluation import beyond
from recsys_lab.evaluation import embedding_quality as embedding

# 4 items; popularity among 8 training users: 8, 4, 2, 1
POP = np.array([8.0, 4.0, 2.0, 1.0])
LISTS = np.array([[0, 1], [2, 3]])


def test_novelty_is_mean_self_information():
    # -log2(8/8)=0, -log2(4/8)=1, -log2(2/8)=2, -log2(1/8)=3 -> mean 1.5
    assert beyond.novelty(LISTS, POP, 8) == pytest.approx(1.5)
    assert beyond.novelty(np.array([[3, -1]]), POP, 8) == pytest.approx(3.0)  # padding ignored


def test_intra_list_diversity_by_embedding():
    vecs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    # list 1: orthogonal -> distance 1; list 2: identical direction -> 1 - cos(x2, x3) = 1 - (-1) = 2
    assert beyond.intra_list_diversity(LISTS, vecs) == pytest.approx(1.5)
    assert beyond.intra_list_diversity(np.array([[0, 2, 1]]), vecs) == pytest.approx((0 + 1 + 1) / 3)
    # lists of different lengths (padding -1) are averaged per list; a list of one item has no pair
    mixed = np.array([[0, 1, -1], [0, 2, 1], [3, -1, -1]])
    assert beyond.intra_list_diversity(mixed, vecs) == pytest.approx((1 + 2 / 3) / 2)


def test_category_diversity_counts_pairs_sharing_nothing():
    cats, names = beyond.membership([["a"], ["a", "b"], ["b"], ["c"]])
    assert names == ["a", "b", "c"]
    # list [0,1,2,3]: pairs (0,1) share a, (0,2) no, (0,3) no, (1,2) share b, (1,3) no, (2,3) no -> 4/6
    assert beyond.category_diversity(np.array([[0, 1, 2, 3]]), cats) == pytest.approx(4 / 6)


def test_arp_aplt_gini_coverage():
    assert beyond.average_popularity(LISTS, POP) == pytest.approx(((8 + 4) / 2 + (2 + 1) / 2) / 2)
    # short head: most popular items covering 80 % of 15 interactions: 8/15=.53, 12/15=.8 -> items 0, 1
    tail = beyond.long_tail_items(POP)
    assert tail.tolist() == [False, False, True, True]
    assert beyond.long_tail_share(np.array([[0, 2], [3, 2]]), tail) == pytest.approx((0.5 + 1.0) / 2)
    assert beyond.gini(np.array([1, 1, 1, 1])) == pytest.approx(0.0)
    assert beyond.gini(np.array([0, 0, 0, 4])) == pytest.approx(0.75)  # 1 - 1/n
    assert beyond.exposure_gini(np.array([[0, 1], [0, 1]]), 4) == pytest.approx(0.5)  # [0,0,2,2]
    assert beyond.catalog_coverage(np.array([[0, 1], [0, -1]]), 4) == pytest.approx(0.5)
    keys = beyond.beyond_accuracy(LISTS, popularity=POP, n_users=8, k=2)
    assert set(keys) == {"novelty@2", "arp@2", "aplt@2", "gini@2", "coverage@2"}


def test_coherence_against_chance():
    cats, _ = beyond.membership(["a", "a", "b", "b", None])
    neighbours = np.array([[1, 2], [0, 4], [3, 0], [2, 1], [0, 1]])
    coh, chance = embedding.coherence(neighbours, cats)
    # item0: 1 shares, 2 not -> .5; item1: 0 shares, 4 uncategorised (ignored) -> 1; item2: 3 yes, 0 no -> .5;
    # item3: 2 yes, 1 no -> .5; item4 has no category. Chance: each item shares with 1 of the 3 others.
    assert coh == pytest.approx((0.5 + 1 + 0.5 + 0.5) / 4)
    assert chance == pytest.approx(1 / 3)


def test_cosine_neighbours_and_jaccard_stability():
    vecs = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert embedding.cosine_neighbours(vecs, 1).ravel().tolist() == [1, 0, 3, 2]
    j = embedding.jaccard_overlap(np.array([[1, 2, 3], [4, 5, -1]]), np.array([[3, 2, 9], [-1, -1, -1]]))
    assert j[0] == pytest.approx(2 / 4) and j[1] == 0.0


def test_probe_reads_a_planted_attribute_and_not_noise():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(size=(200, 4))
    x[:, 0] += 3 * y
    found = embedding.probe(x, y)
    assert found["auc"] > 0.9 and found["auc.baseline"] == pytest.approx(0.5)
    assert found["accuracy.baseline"] == pytest.approx(max(y.mean(), 1 - y.mean()), abs=0.02)
    noise = embedding.probe(rng.normal(size=(200, 4)), y)
    assert 0.3 < noise["auc"] < 0.7
    cats = np.column_stack([y == 1, y == 0])
    multi = embedding.multilabel_probe(x, cats, ["one", "zero"])
    assert multi["n_categories"] == 2 and multi["auc"] > 0.9


def test_fairness_and_beyond_keys_work_as_gate_bounds():
    from recsys_lab.config import GateConfig
    from recsys_lab.evaluation.gate import check_gate

    gate = GateConfig(min={"novelty@k": 2.0}, max={"fairness.user.gender.ndcg@10.gap": 0.05}, max_regression={},
                      not_worse_than=())
    ok = check_gate({"novelty@10": 2.9, "fairness.user.gender.ndcg@10.gap": 0.01}, gate, k=10)
    assert ok.passed
    bad = check_gate({"novelty@10": 2.9, "fairness.user.gender.ndcg@10.gap": 0.08}, gate, k=10)
    assert not bad.passed and "fairness.user.gender.ndcg@10.gap" in bad.reason
