import numpy as np
import pytest

from recsys_lab.ann import MipsIndex, augment_items, augment_queries, load_index
from recsys_lab.errors import ModelError
from recsys_lab.evaluation import recall_overlap, top_k


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(1500, 17)).astype(np.float32) * rng.uniform(0.2, 3.0, size=(1500, 1)).astype(np.float32)
    users = rng.normal(size=(300, 17)).astype(np.float32)
    return users, items


@pytest.fixture(scope="module", params=["inner_product", "euclidean_augmented"])
def index(vectors, request):
    return MipsIndex(vectors[1], method=request.param, seed=0)


def test_augmentation_turns_inner_product_order_into_euclidean_order(vectors):
    users, items = vectors
    aug, m = augment_items(items)
    q = augment_queries(users[:20])
    np.testing.assert_allclose(np.linalg.norm(aug, axis=1), m, rtol=1e-5)
    for row in range(20):
        by_dot = np.argsort(-(items @ users[row]))[:10]
        by_l2 = np.argsort(np.linalg.norm(aug - q[row], axis=1))[:10]
        assert by_dot.tolist() == by_l2.tolist()


def test_index_recall_against_exact_top_k(vectors, index):
    users, items = vectors
    approx, scores = index.query(users, 10)
    exact, exact_scores = top_k(users, items, 10)
    assert recall_overlap(approx, exact) >= 0.9
    # returned scores are the true inner products
    np.testing.assert_allclose(scores, np.take_along_axis(users @ items.T, approx, axis=1), rtol=1e-3, atol=1e-3)
    assert index.build_seconds > 0 and index.compile_seconds >= 0


def test_pickle_round_trip(vectors, index, tmp_path):
    users, _ = vectors
    again = load_index(index.save(tmp_path / "index.pkl"))
    assert (again.query(users[:5], 5)[0] == index.query(users[:5], 5)[0]).all()


def test_bad_inputs(vectors, index, tmp_path):
    users, items = vectors
    with pytest.raises(ModelError, match="NaN or inf"):
        MipsIndex(np.full((5, 3), np.nan, np.float32))
    with pytest.raises(ModelError, match=r"shape \(n, 17\)"):
        index.query(users[:, :5])
    with pytest.raises(ModelError, match="cannot load index"):
        load_index(tmp_path / "missing.pkl")
    with pytest.raises(ModelError, match="unknown MIPS method 'dot'"):
        MipsIndex(items, method="dot")
