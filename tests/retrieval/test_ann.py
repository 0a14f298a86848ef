import numpy as np
import pytest

from recsys_lab.errors import ModelError
from recsys_lab.evaluation.ranking import recall_overlap, top_k
from recsys_lab.retrieval.ann import MipsIndex, load_index
from recsys_lab.retrieval.graphs import augment_items, augment_queries
from recsys_lab.retrieval.neighbours import similar_items


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(1500, 17)).astype(np.float32) * rng.uniform(0.2, 3.0, size=(1500, 1)).astype(np.float32)
    users = rng.normal(size=(300, 17)).astype(np.float32)
    return users, items


@pytest.fixture(scope="module", params=["norm_range", "inner_product", "euclidean_augmented"])
def index(vectors, request):
    if request.param == "norm_range":  # a head of 300 items, the rest in the graph
        return MipsIndex(vectors[1], method="norm_range", head_size=300, seed=0)
    return MipsIndex(vectors[1], method=request.param, epsilon=0.4, seed=0)


def test_augmentation_turns_inner_product_order_into_euclidean_order(vectors):
    users, items = vectors
    aug, m = augment_items(items)
    q = augment_queries(users[:20])
    np.testing.assert_allclose(np.linalg.norm(aug, axis=1), m, rtol=1e-5)
    for row in range(20):
        by_dot = np.argsort(-(items @ users[row]))[:10]
        by_l2 = np.argsort(np.linalg.norm(aug - q[row], axis=1))[:10]
        assert by_dot.tolist() == by_l2.tolist()


@pytest.mark.slow  # builds pynndescent graphs: numba compiles in each fresh process
def test_index_recall_against_exact_top_k(vectors, index):
    users, items = vectors
    approx, scores = index.query(users, 10)
    exact, exact_scores = top_k(users, items, 10)
    assert recall_overlap(approx, exact) >= 0.9
    # returned scores are the true inner products
    np.testing.assert_allclose(scores, np.take_along_axis(users @ items.T, approx, axis=1), rtol=1e-3, atol=1e-3)
    assert index.build_seconds > 0 and index.compile_seconds >= 0 and index._graph.graph is not None


@pytest.mark.slow  # builds pynndescent graphs: numba compiles in each fresh process
def test_pickle_round_trip(vectors, index, tmp_path):
    users, _ = vectors
    again = load_index(index.save(tmp_path / "index.pkl"))
    assert (again.query(users[:5], 5)[0] == index.query(users[:5], 5)[0]).all()


@pytest.mark.slow  # builds pynndescent graphs: numba compiles in each fresh process
def test_bad_inputs(vectors, index, tmp_path):
    users, items = vectors
    with pytest.raises(ModelError, match="NaN or inf"):
        MipsIndex(np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ModelError, match=r"shape \(n, 17\)"):
        index.query(users[:, :5])
    with pytest.raises(ModelError, match="not a readable index"):
        load_index(tmp_path / "missing.pkl")
    with pytest.raises(ModelError, match="unknown MIPS method 'dot'"):
        MipsIndex(items, method="dot")


def test_norm_range_is_exact_when_the_head_covers_the_catalogue(vectors):
    users, items = vectors
    idx = MipsIndex(items, method="norm_range", head_size=len(items))  # no graph, no numba
    assert idx.head_size == len(items) and idx.compile_seconds == 0.0
    got, scores = idx.query(users, 10)
    exact, exact_scores = top_k(users, items, 10)
    np.testing.assert_array_equal(got, exact)
    np.testing.assert_allclose(scores, exact_scores, rtol=1e-5)


@pytest.mark.slow  # builds pynndescent graphs: numba compiles in each fresh process
def test_norm_range_head_holds_the_largest_norms_and_the_bound_skips_the_graph(vectors):
    users, items = vectors
    idx = MipsIndex(items, method="norm_range", head_size=200, seed=0)
    norms = np.linalg.norm(items, axis=1)
    assert norms[idx._graph.head_ids].min() >= norms[idx._graph.tail_ids].max()
    # a query along the largest item: its head scores beat |q| * M_tail, so the answer is exact
    q = items[[int(np.argmax(norms))]] * 10
    got, _ = idx.query(q, 1)
    assert got[0, 0] == int(np.argmax(q @ items.T))
    # k larger than the head still returns k items, exact scores, sorted
    got, scores = idx.query(users[:5], 250)
    assert got.shape == (5, 250) and (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_allclose(scores, np.take_along_axis(users[:5] @ items.T, got, axis=1), rtol=1e-4, atol=1e-4)


def test_similar_items_excludes_the_item_and_ranks_by_the_documented_similarity(vectors):
    _, items = vectors
    idx = MipsIndex(items, method="exact")
    got, scores = similar_items(idx, np.array([3, 40]), 5)
    assert got.shape == (2, 5) and 3 not in got[0] and 40 not in got[1]
    q = items[[3, 40]].copy()
    q[:, -1] = 1.0
    s = q @ items.T
    s[[0, 1], [3, 40]] = -np.inf
    np.testing.assert_array_equal(got, np.argsort(-s, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(scores, np.sort(s, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    with pytest.raises(ModelError, match="item index 1500 out of range"):
        similar_items(idx, np.array([1500]))


def test_measure_recall_builds_the_index_and_compares_with_exact_top_k(vectors):
    from recsys_lab.retrieval.recall import measure_recall

    users, items = vectors
    exact = measure_recall(items, users[:50], 10, method="exact")
    assert exact.index is None and exact.recall == 1.0 and exact.timings["index.exact"] == 1.0
    r = measure_recall(items, users[:50], 10, method="norm_range", head_size=1500, seed=0)  # all in the head: exact
    assert r.index is not None and r.recall == 1.0 and r.timings["index.exact"] == 0.0
    assert r.recall == recall_overlap(r.index.query(users[:50], 10)[0], top_k(users[:50], items, 10)[0])
