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
        temporal_split(ds.interactions, ds.shape)
