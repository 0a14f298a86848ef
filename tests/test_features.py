from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from recsys_lab.config import FeatureConfig
from recsys_lab.errors import ConfigError, DataError
from recsys_lab.features import IdMap, align, build_dataset, identity_features


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
                                                          item=("genre", "release_date"), n_buckets=2))
    assert ds.shape == (4, 5)
    # list column -> one token per element; date -> decade
    assert set(ds.item_features.row_tokens(1)) == {"item=2", "genre=Drama", "genre=Comedy", "release_date=1980s"}
    # text -> col=value; number -> quantile bucket (2 buckets: the two youngest vs the two oldest)
    young, old = ds.user_features.row_tokens(0), ds.user_features.row_tokens(3)
    assert {"user=1", "gender=M", "occupation=student"} < set(young)
    assert {"user=4", "gender=M", "occupation=other"} < set(old)
    age_young = [t for t in young if t.startswith("age=")]
    age_old = [t for t in old if t.startswith("age=")]
    assert len(age_young) == len(age_old) == 1 and age_young != age_old
    assert age_young == [t for t in ds.user_features.row_tokens(1) if t.startswith("age=")]
    # ids and feature names never collide: every token carries its namespace
    assert all("=" in t for t in ds.item_features.tokens + ds.user_features.tokens)
    sums = np.asarray(ds.item_features.matrix.sum(axis=1)).ravel()
    np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    assert ds.item_features.matrix.dtype == np.float32


def test_unknown_feature_column_names_the_available_ones(tiny_tables):
    inter, users, items = tiny_tables
    with pytest.raises(ConfigError, match=r"features.item: no column 'genres' in the items table; available: "
                                          r"\['title', 'release_date', 'genre'\]"):
        build_dataset(inter, users, items, FeatureConfig(item=("genres",)))


def test_string_ids_work(tiny_tables):
    inter, users, items = tiny_tables
    as_text = [pl.col("user_id").cast(pl.Utf8).str.replace(r"^", "u")]
    ds = build_dataset(inter.with_columns(as_text), users.with_columns(as_text), items)
    assert ds.users.ids.tolist() == ["u1", "u2", "u3", "u4"]
    assert ds.users.to_index(["u3"]).tolist() == [2]
    assert "user=u2" in ds.user_features.tokens


def test_time_windowed_user_features(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items, FeatureConfig(windows=(3, 30), window_category="genre"))
    cutoff = datetime(2020, 1, 10, tzinfo=timezone.utc)
    tokens = ds.window_tokens(cutoff)
    # only interactions strictly before the cut-off count (no leakage from the test period)
    u1 = tokens.filter(pl.col("row") == int(ds.users.to_index(1)))
    # user 1 saw items 1 (Comedy, Jan 1), 2 (Drama+Comedy, Jan 2), 3 (Action, Jan 9); item 4 on Jan 10 is not before
    assert set(u1["token"]) == {"activity_30d=2-3", "taste_30d.genre=Comedy", "taste_30d.genre=Drama",
                                "taste_30d.genre=Action", "activity_3d=1", "taste_3d.genre=Action"}
    comedy = u1.filter(pl.col("token") == "taste_30d.genre=Comedy")["weight"][0]
    assert comedy == pytest.approx(2 / 4)  # 2 of the 4 genre mentions
    u4 = tokens.filter(pl.col("row") == int(ds.users.to_index(4)))
    assert {"activity_3d=2-3", "activity_30d=2-3"} <= set(u4["token"])  # Jan 7 and 8 are within 3 days of Jan 10
    m = ds.user_features_at(cutoff)
    assert m.shape[0] == 4 and any(t.startswith("taste_30d") for t in m.tokens)
    assert ds.without_windows().user_features_at(cutoff).tokens == ds.user_features.tokens


def test_cold_item_gets_a_row_from_its_side_features(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    cold = ds.items.to_index(5)
    assert set(ds.item_features.row_tokens(int(cold[()] if cold.ndim == 0 else cold))) == {"item=5", "genre=Sci-Fi"}
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


# -- the one id lookup: IdMap.lookup / to_index, IdMap.from_sorted, align -------------------------------------------
def test_lookup_reports_unknown_ids_in_a_mask_and_compares_in_the_map_type():
    ints = IdMap([10, 30, 20], "item_id")
    idx, ok = ints.lookup(np.array([30, 25, 10, 99]))
    assert ok.tolist() == [True, False, True, False] and idx[ok].tolist() == [2, 0]
    # text typed by a user is parsed for an integer map (spaces ignored, unparsable text unknown) ...
    idx, ok = ints.lookup(np.array([" 20", "abc", "30"], dtype=object))
    assert ok.tolist() == [True, False, True] and idx[ok].tolist() == [1, 2]
    # ... floats match only when integral
    assert ints.lookup(np.array([20.0, 20.5]))[1].tolist() == [True, False]
    text = IdMap(["b", "a"], "user_id")
    idx, ok = text.lookup([1, "b"])  # a text map compares the text of anything
    assert ok.tolist() == [False, True] and idx[1] == 1
    empty = IdMap(np.array([], dtype=np.int64), "item_id")
    assert empty.lookup([1, 2])[1].tolist() == [False, False]


def test_to_index_keeps_its_shape_and_names_the_first_unknown_id():
    m = IdMap([10, 20, 30], "item_id")
    assert m.to_index(np.array([[30, 10], [20, 20]])).tolist() == [[2, 0], [1, 1]]
    assert m.to_index(20).shape == ()
    with pytest.raises(DataError, match="unknown item_id x1"):
        m.to_index(["x1"])


def test_from_sorted_keeps_the_saved_order_and_refuses_unsorted_ids():
    m = IdMap.from_sorted(np.array([3, 7, 9], dtype=np.int32), "user_id")
    assert m.ids.dtype == np.int64 and m.to_index([9, 3]).tolist() == [2, 0]
    with pytest.raises(DataError, match="user_id: ids are not unique and sorted"):
        IdMap.from_sorted(np.array([3, 1]), "user_id")
    with pytest.raises(DataError, match="expected a 1-D array"):
        IdMap.from_sorted(np.array([1.5, 2.5]), "user_id")


def test_align_pairs_shared_ids_in_the_first_order_even_across_id_types():
    ia, ib = align(np.array([10, 20, 30]), np.array([30, 40, 10]))
    assert ia.tolist() == [0, 2] and ib.tolist() == [2, 0]
    ia, ib = align(np.array([1, 2, 3]), np.array(["3", "x", "1"]))  # integer run against a text run
    assert ia.tolist() == [0, 2] and ib.tolist() == [2, 0]
    assert ia.dtype == ib.dtype == np.int64
    mine, theirs = align(IdMap([5, 6, 7], "item_id").ids, IdMap([7, 5], "item_id").ids)
    assert mine.tolist() == [0, 2] and theirs.tolist() == [0, 1]  # the other map is sorted too: [5, 7]
    assert [len(a) for a in align(np.array([1]), np.array([2]))] == [0, 0]


@pytest.mark.parametrize("text", [False, True])
def test_lookup_and_align_agree_with_an_obvious_dictionary(text):
    """The one id lookup against a slow, obviously correct loop (it replaced serving's own ``_lookup`` and stands
    in for evaluation's ``align``)."""
    rng = np.random.default_rng(1)
    a = rng.choice(500, size=200, replace=False)
    b = rng.choice(500, size=150, replace=False)
    if text:
        a, b = a.astype(str), b.astype(str)
    m = IdMap(a, "item_id")
    position = {x: j for j, x in enumerate(m.ids.tolist())}
    idx, ok = m.lookup(b)
    assert ok.tolist() == [x in position for x in b.tolist()]
    assert idx[ok].tolist() == [position[x] for x in b.tolist() if x in position]
    ia, ib = align(a, b)
    where_b = {x: j for j, x in enumerate(b.tolist())}
    pairs = [(j, where_b[x]) for j, x in enumerate(a.tolist()) if x in where_b]
    assert list(zip(ia.tolist(), ib.tolist())) == pairs
