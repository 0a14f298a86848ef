"""The weight transform and the positive rule: the Polars expression and the DuckDB SQL agree."""

import duckdb
import numpy as np
import polars as pl
import pytest

from recsys_lab.config import WEIGHT_TRANSFORMS, Config
from recsys_lab.data import movielens
from recsys_lab.data.weights import (
    is_positive,
    is_positive_sql,
    positive_threshold,
    transform,
    transform_sql,
)
from recsys_lab.errors import ConfigError

RAW = pl.DataFrame({"weight": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 40.0]})


@pytest.mark.parametrize("name", WEIGHT_TRANSFORMS)
def test_polars_and_sql_transforms_compute_the_same_numbers(name):
    polars = RAW.select(transform(name))["weight"].to_numpy()
    with duckdb.connect() as con:
        con.register("t", RAW)
        sql = con.sql(f"SELECT {transform_sql(name)} AS w FROM t").pl()["w"].to_numpy()
    expected = np.log1p(RAW["weight"].to_numpy()) if name == "log1p" else RAW["weight"].to_numpy()
    np.testing.assert_allclose(polars, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(sql, expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name, threshold", [("none", 4.0), ("log1p", 0.5), ("log1p", np.log1p(3.0))])
def test_polars_and_sql_positive_rules_agree(name, threshold):
    polars = RAW.select(is_positive(threshold, transform_name=name))["weight"].to_list()
    with duckdb.connect() as con:
        con.register("t", RAW)
        sql = con.sql(f"SELECT {is_positive_sql(threshold, transform_name=name)} AS p FROM t").pl()["p"].to_list()
    assert polars == sql
    w = RAW["weight"].to_numpy()
    assert polars == list((np.log1p(w) if name == "log1p" else w) >= threshold)


def test_positive_threshold_defaults_by_source():
    assert positive_threshold(Config().data) == movielens.POSITIVE_THRESHOLD == 4.0
    files = Config().replace({"data.source": "files", "data.interactions": "log.csv"}).data
    assert positive_threshold(files) == 0.0
    assert positive_threshold(Config().replace({"data.positive_threshold": 3}).data) == 3.0


def test_an_unknown_transform_is_a_config_error():
    with pytest.raises(ConfigError, match="data.weight_transform: expected one of"):
        transform_sql("sqrt")
