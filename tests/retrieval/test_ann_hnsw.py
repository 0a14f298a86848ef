"""The default index (exact head + hnswlib graph, calibrated at build time): recall on held-out queries from two
vector shapes, the calibration recorded, and a reload from plain arrays that answers identically and refuses
tampered arrays. Small sizes, no timing asserts."""

import io

import numpy as np
import pytest

from recsys_lab.errors import ModelError
from recsys_lab.evaluation.ranking import recall_overlap, top_k
from recsys_lab.retrieval import ann
from recsys_lab.retrieval.ann import MipsIndex


def _concentrated(seed=0):
    """Spread norms, popularity in a bias column: most users' answers are among a few hundred items."""
    rng = np.random.default_rng(seed)
    d = 16
    items = rng.normal(size=(6000, d)).astype(np.float32) * rng.lognormal(0, 0.8, (6000, 1)).astype(np.float32) * 0.3
    items[:, -1] = rng.normal(0, 1.0, 6000) ** 3  # heavy-tailed popularity bias
    users = rng.normal(size=(1500, d)).astype(np.float32) * 0.3
    users[:, -1] = 1.0
    return users, items


def _spread(seed=0):
    """Near-equal norms, 300 taste clusters: answers spread over the catalogue (no head holds them)."""
    rng = np.random.default_rng(seed)
    d = 24
    centers = rng.normal(size=(300, d)).astype(np.float32)
    items = centers[rng.integers(0, 300, 6000)] + 0.4 * rng.normal(size=(6000, d)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    users = centers[rng.integers(0, 300, 1500)] + 0.4 * rng.normal(size=(1500, d)).astype(np.float32)
    return users.astype(np.float32), items.astype(np.float32)


@pytest.fixture(scope="module", params=["concentrated", "spread"])
def built(request):
    users, items = (_concentrated if request.param == "concentrated" else _spread)()
    held_out, pool = users[:500], users[500:]
    return request.param, held_out, items, MipsIndex(items, queries=pool, seed=0)


def test_recall_reaches_the_target_on_held_out_queries_of_both_shapes(built):
    shape, q, items, index = built
    exact, _ = top_k(q, items, 10)
    got, scores = index.query(q, 10)
    assert recall_overlap(got, exact) >= 0.95
    np.testing.assert_allclose(scores, np.take_along_axis(q @ items.T, got, axis=1), rtol=1e-4, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 0).all()
    # the calibration is recorded, and the chosen setting is one of the settings tried that reached the target
    assert index.calibration and (index.head_size, index.ef) in [(h, e) for h, e, r, _ in index.calibration
                                                                  if r >= index.target_recall]
    if shape == "spread":  # no head holds these answers: the graph does the work
        assert index.ef > 0 and index._hnsw is not None
    else:  # a few hundred items hold the answers: the head alone, no graph built
        assert 0 < index.head_size <= 4096 and index.ef == 0 and index._hnsw is None


def test_from_arrays_of_to_arrays_answers_identically_without_pickle(built, tmp_path):
    _, q, _, index = built
    buf = io.BytesIO()
    np.savez(buf, **index.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        again = MipsIndex.from_arrays(z)
    a, b = index.query(q, 10), again.query(q, 10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert (again.head_size, again.ef, again.calibration) == (index.head_size, index.ef, index.calibration)
    pickled = ann.load_index(index.save(tmp_path / "index.pkl"))  # the pickle route still works meanwhile
    np.testing.assert_array_equal(pickled.query(q, 10)[0], a[0])


def test_a_fixed_head_and_exact_route_and_thread_control():
    users, items = _spread(1)
    exact, _ = top_k(users[:200], items, 10)
    idx = MipsIndex(items, method="exact")
    np.testing.assert_array_equal(MipsIndex.from_arrays(idx.to_arrays()).query(users[:200], 10)[0], exact)
    fixed = MipsIndex(items, queries=users[200:], head_size=0, seed=0)
    assert fixed.head_size == 0 and [c[0] for c in fixed.calibration] == [0]
    with ann.query_threads(1):
        assert recall_overlap(fixed.query(users[:200], 10)[0], exact) >= 0.9


def test_tampered_arrays_raise_a_typed_error_before_reaching_hnswlib():
    users, items = _spread(2)
    arrays = MipsIndex(items[:3000], queries=users, head_size=0, seed=0).to_arrays()
    assert "hnsw_data_level0" in arrays

    def broken(**change):
        return MipsIndex.from_arrays({**arrays, **change})

    level0 = arrays["hnsw_data_level0"].copy().view(np.uint8).reshape(3000, -1)
    level0[7, 4:8] = np.frombuffer(np.uint32(10**6).tobytes(), np.uint8)  # a neighbour id out of range
    with pytest.raises(ModelError, match="neighbour list out of range"):
        broken(hnsw_data_level0=level0.reshape(-1).view(np.int8))
    with pytest.raises(ModelError, match="wrong size"):
        broken(hnsw_link_lists=arrays["hnsw_link_lists"][:-4])
    with pytest.raises(ModelError, match="head_ids"):
        broken(head_ids=np.array([0, 5000]))
    with pytest.raises(ModelError, match="does not match"):
        broken(items=items[:2999])
    with pytest.raises(ModelError, match="missing or malformed"):
        MipsIndex.from_arrays({"items": items})
    with pytest.raises(ModelError, match="calibration queries"):
        MipsIndex(items, queries=users[:, :3])
    with pytest.raises(ModelError, match="target_recall"):
        MipsIndex(items, target_recall=0)
