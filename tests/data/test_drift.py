"""PSI and the drift metrics of a new snapshot against production's."""

from datetime import datetime, timezone

import numpy as np
import polars as pl
import pytest

from recsys_lab.data.drift import drift, psi, psi_band


def test_psi_known_values_and_bands():
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    # hand-computed: (0.5-0.25)ln(2) + (0.5-0.75)ln(2/3)
    assert psi(np.array([1, 3]), np.array([1, 1])) == pytest.approx(0.25 * np.log(2) - 0.25 * np.log(2 / 3))
    assert [psi_band(v) for v in (0.05, 0.2, 0.3)] == ["stable", "moderate", "major"]


def test_drift_on_movielens_halves(ml100k):
    inter = ml100k.interactions
    cut = datetime(1998, 1, 1, tzinfo=timezone.utc)
    ref = {"interactions": inter.filter(pl.col("ts") < cut), "users": ml100k.users, "items": ml100k.items}
    new = {"interactions": inter.filter(pl.col("ts") >= cut), "users": ml100k.users, "items": ml100k.items}
    d = drift(ref, new, user_columns=("occupation", "age"), item_columns=("genre",))
    same = drift(ref, ref, user_columns=("occupation", "age"), item_columns=("genre",))
    assert all(v == pytest.approx(0.0) for v in same.values())
    assert d["drift.new_user_share"] > 0.3  # ML-100k users arrive over time
    assert d["drift.psi.item_popularity"] > 0.1 and d["drift.psi.user_activity"] > 0
    assert {"drift.psi.user.occupation", "drift.psi.user.age", "drift.psi.item.genre", "drift.catalog_churn"} <= set(d)


def test_drift_between_integer_and_text_ids_does_not_crash(tiny_tables):
    """Production trained on integer ids, the new log has text ids: drift still compares them."""
    inter, users, items = tiny_tables
    ref = {"interactions": inter, "users": users, "items": items}
    new = {"interactions": inter.with_columns(pl.col("user_id").cast(pl.Utf8), pl.col("item_id").cast(pl.Utf8)),
           "users": users.with_columns(pl.col("user_id").cast(pl.Utf8)),
           "items": items.with_columns(pl.col("item_id").cast(pl.Utf8))}
    out = drift(ref, new, user_columns=("gender",), item_columns=("genre",))
    assert out["drift.new_user_share"] == 0.0 and out["drift.psi.item_popularity"] == pytest.approx(0.0)
