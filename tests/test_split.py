import numpy as np
import polars as pl
import pytest

from recsys_lab.config import SplitConfig
from recsys_lab.errors import DataError
from recsys_lab.features import build_dataset
from recsys_lab.split import temporal_split


def test_split_invariants_on_movielens(ml100k):
    ds = build_dataset(ml100k.interactions, ml100k.users, ml100k.items)
    sp_ = temporal_split(ds.interactions, ds.shape, SplitConfig(), positive_threshold=4)
    inter = ds.interactions
    before = inter.filter(pl.col("ts") < sp_.cutoff)
    # the last 20 % by time is test
    assert abs(sp_.stats["n_test"] / inter.height - 0.2) < 0.01
    assert before.height == sp_.stats["n_train"]
    # nothing seen in training is a test positive; train holds only positives
    assert sp_.test.multiply(sp_.train_seen).nnz == 0
    pos_before = before.filter(pl.col("weight") >= 4).select("user_idx", "item_idx").unique().height
    assert sp_.train.nnz == pos_before
    # validation is inside the training period, after the fit period
    assert sp_.validation_cutoff < sp_.cutoff
    assert sp_.validation.multiply(sp_.fit_seen).nnz == 0
    assert (sp_.fit.multiply(sp_.train) != sp_.fit).nnz == 0  # fit is a subset of train
    warm = sp_.warm_test_users
    assert len(warm) == sp_.stats["warm_test_users"] > 50
    assert (sp_.train[warm].getnnz(axis=1) > 0).all() and (sp_.test[warm].getnnz(axis=1) > 0).all()
    assert 0 < sp_.stats["cold_user_share"] < 1 and 0 <= sp_.stats["cold_item_share"] < 1


def test_positive_threshold_is_configurable(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    strict = temporal_split(ds.interactions, ds.shape, SplitConfig(test_fraction=0.25), positive_threshold=5)
    loose = temporal_split(ds.interactions, ds.shape, SplitConfig(test_fraction=0.25), positive_threshold=1)
    assert strict.train.nnz < loose.train.nnz
    assert strict.train_seen.nnz == loose.train_seen.nnz == 9  # 9 of 12 interactions before the cut-off


def test_degenerate_timestamps_are_rejected(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter.with_columns(pl.col("ts").min().alias("ts")), users, items)
    with pytest.raises(DataError, match="at least 2 distinct timestamps"):
        temporal_split(ds.interactions, ds.shape, positive_threshold=4)


# -- protocols -----------------------------------------------------------------------------------------------
from recsys_lab.errors import ConfigError  # noqa: E402
from recsys_lab.split import make_split  # noqa: E402


def test_per_user_temporal_split_evaluates_enough_users_on_movielens(ml100k):
    ds = build_dataset(ml100k.interactions, ml100k.users, ml100k.items)
    sp_ = make_split(ds.interactions, ds.shape, SplitConfig(), positive_threshold=4)
    assert sp_.method == "time_per_user"
    assert sp_.stats["warm_test_users"] >= 500  # the global cut-off leaves ~100
    # each warm user's test interactions come after all of their training interactions
    inter = ds.interactions.select("user_idx", "item_idx", "ts")
    test = sp_.test.tocoo()
    test_pairs = pl.DataFrame({"user_idx": test.row.astype(np.int64), "item_idx": test.col.astype(np.int64)})
    first_test = test_pairs.join(inter, on=["user_idx", "item_idx"]).group_by("user_idx").agg(pl.col("ts").min())
    train = sp_.train_seen.tocoo()
    last_train = (pl.DataFrame({"user_idx": train.row.astype(np.int64), "item_idx": train.col.astype(np.int64)})
                  .join(inter, on=["user_idx", "item_idx"]).group_by("user_idx").agg(pl.col("ts").max()))
    both = first_test.join(last_train, on="user_idx", suffix="_train")
    assert (both["ts"] >= both["ts_train"]).all()
    # held-out cold users: ~10 % of users, never in training, their positives in time order
    cold = sp_.cold_users
    assert abs(len(cold) - 0.1 * ds.shape[0]) <= 1
    assert sp_.train_seen[cold].nnz == 0 and sp_.fit_seen[cold].nnz == 0
    assert sp_.cold.group_by("user_idx", maintain_order=True).agg(pl.col("ts").is_sorted())["ts"].all()
    assert len(sp_.validation_users) > 500


def test_random_split_is_seeded_and_respects_fractions(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    cfg = SplitConfig(method="random", cold_users=0.0, test_fraction=0.5)
    a = make_split(ds.interactions, ds.shape, cfg, positive_threshold=1, seed=3)
    b = make_split(ds.interactions, ds.shape, cfg, positive_threshold=1, seed=3)
    assert (a.test != b.test).nnz == 0 and (a.train != b.train).nnz == 0
    # 3 interactions per user, half rounded: 2 test per user, never a pair in both sides
    assert (a.test.getnnz(axis=1) + a.train_seen.getnnz(axis=1) == 3).all()
    assert a.test.multiply(a.train_seen).nnz == 0


def test_a_log_without_timestamps_uses_the_random_protocol(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("ts")), users, items)
    sp_ = make_split(ds.interactions, ds.shape, SplitConfig(cold_users=0.0), positive_threshold=1)
    assert sp_.method == "random" and sp_.test.nnz > 0
    with pytest.raises(ConfigError, match="split.method: time_per_user needs a time column"):
        make_split(ds.interactions, ds.shape, SplitConfig(method="time_per_user"), positive_threshold=1)


def test_windowed_features_need_the_global_cut_off(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    assert make_split(ds.interactions, ds.shape, SplitConfig(), positive_threshold=1, windows=True).method == "time_global"
    with pytest.raises(ConfigError, match="one global cut-off"):
        make_split(ds.interactions, ds.shape, SplitConfig(method="random"), positive_threshold=1, windows=True)


def test_no_training_positive_is_a_data_error(tiny_tables):
    inter, users, items = tiny_tables
    ds = build_dataset(inter, users, items)
    with pytest.raises(DataError, match="no positive interaction"):
        make_split(ds.interactions, ds.shape, SplitConfig(), positive_threshold=99)
