import numpy as np
import pytest

from recsys_lab.config import FeatureConfig
from recsys_lab.errors import DataError
from recsys_lab.features import IdMap, build_dataset, identity_features


def test_id_map_round_trip_and_unknown_id():
    m = IdMap([30, 10, 20, 10], "item_id")
    assert len(m) == 3
    assert m.to_index([10, 30]).tolist() == [0, 2]
    assert m.to_external(m.to_index([20, 30, 10])).tolist() == [20, 30, 10]
    with pytest.raises(DataError, match="unknown item_id 25"):
        m.to_index([10, 25])
    with pytest.raises(DataError, match="index out of range"):
        m.to_external([3])


def test_tokens_are_namespaced_and_rows_normalised(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items, FeatureConfig(user=("age", "gender", "occupation"),
                                                          item=("genre", "decade")))
    assert ds.shape == (4, 5)
    assert set(ds.item_features.row_tokens(1)) == {"item=2", "genre=Drama", "genre=Comedy", "decade=1980s"}
    assert set(ds.user_features.row_tokens(0)) == {"user=1", "age=<18", "gender=M", "occupation=student"}
    assert set(ds.user_features.row_tokens(3)) == {"user=4", "age=56+", "gender=M", "occupation=other"}
    # ids and feature names never collide: every token carries its namespace
    assert all("=" in t for t in ds.item_features.tokens + ds.user_features.tokens)
    sums = np.asarray(ds.item_features.matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    assert ds.item_features.matrix.dtype == np.float32


def test_cold_item_gets_a_row_from_its_side_features(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    cold = ds.items.to_index(5)
    assert set(ds.item_features.row_tokens(int(cold))) == {"item=5", "genre=Sci-Fi"}
    assert ds.interactions["item_idx"].max() < len(ds.items)
    assert ds.interactions["ts"].is_sorted()


def test_identity_features_are_pure_cf(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    f = identity_features(ds.items, "item")
    assert f.shape == (5, 5) and f.tokens[0] == "item=1" and (f.matrix != 0).sum() == 5


def test_missing_column_is_named(tiny_tables):
    inter, users, items = tiny_tables
    with pytest.raises(DataError, match=r"table interactions: missing column\(s\) \['ts'\]"):
        build_dataset(inter.drop("ts"), users, items)
