"""Any interaction log in CSV or Parquet: column mapping, derived tables, timestamps and typed errors."""

import polars as pl
import pytest

from recsys_lab.config import Config
from recsys_lab.data.files import load_files
from recsys_lab.errors import DataFileError


def _cfg(path, **overrides):
    return Config().replace({"data.source": "files", "data.interactions": str(path),
                             **{f"data.{k}": v for k, v in overrides.items()}}).data


def test_column_mapping_and_derived_tables(tmp_path):
    path = tmp_path / "log.csv"
    pl.DataFrame({"who": ["a", "b", "a"], "what": ["x", "y", "y"], "n": [1, 2, 3],
                  "at": [1_600_000_000, 1_600_000_100, 1_600_000_200]}).write_csv(path)
    t = load_files(_cfg(path, user_col="who", item_col="what", weight_col="n", time_col="at"))
    assert t.interactions.columns == ["user_id", "item_id", "weight", "ts"]
    assert t.interactions["weight"].to_list() == [1.0, 2.0, 3.0]
    assert t.interactions["ts"].dtype == pl.Datetime("us", "UTC") and t.has_time
    assert t.users["user_id"].to_list() == ["a", "b"] and t.items["title"].to_list() == ["x", "y"]


def test_no_weight_column_weighs_one_and_no_ts_column_means_no_time(tmp_path):
    path = tmp_path / "log.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4]}).write_parquet(path)
    t = load_files(_cfg(path))
    assert t.interactions["weight"].to_list() == [1.0, 1.0] and not t.has_time


@pytest.mark.parametrize("frame, overrides, match", [
    ({"user_id": [1], "item": [2]}, {}, r"column 'item_id': missing column 'item_id'"),
    ({"user_id": [1], "item_id": [2], "ts": [1_600_000_000_000]}, {}, r'time_unit = "ms"'),
    ({"user_id": [1], "item_id": [2], "ts": ["yesterday"]}, {}, r"cannot parse timestamp 'yesterday'"),
])
def test_bad_logs_are_typed_errors_naming_the_file(tmp_path, frame, overrides, match):
    path = tmp_path / "log.csv"
    pl.DataFrame(frame).write_csv(path)
    with pytest.raises(DataFileError, match=match):
        load_files(_cfg(path, **overrides))


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "log.json").write_text("{}")
    with pytest.raises(DataFileError, match="unknown format '.json'"):
        load_files(_cfg(tmp_path / "log.json"))
    with pytest.raises(DataFileError, match="interactions file does not exist"):
        load_files(_cfg(tmp_path / "absent.csv"))


@pytest.mark.parametrize("frame, overrides, column", [
    ({"user_id": [1, 2], "item_id": [{"a": 1}, {"a": 2}]}, {}, "item_id"),
    ({"user_id": [[1], [2]], "item_id": [1, 2]}, {}, "user_id"),
    ({"user_id": [1, 2], "item_id": [1, 2], "plays": [[1.0], [2.0]]}, {"weight_col": "plays"}, "plays"),
])
def test_nested_parquet_columns_are_refused_by_name(tmp_path, frame, overrides, column):
    """Struct/list columns in a Parquet log were loaded and crashed later with a traceback."""
    path = tmp_path / "log.parquet"
    pl.DataFrame(frame).write_parquet(path)
    with pytest.raises(DataFileError, match=rf"log\.parquet, column '{column}': column has nested type"):
        load_files(_cfg(path, **overrides))


def test_nested_id_column_in_an_item_table_is_refused(tmp_path):
    log_path, items = tmp_path / "log.parquet", tmp_path / "items.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}).write_parquet(log_path)
    pl.DataFrame({"item_id": [[1], [2]], "title": ["a", "b"]}).write_parquet(items)
    with pytest.raises(DataFileError, match=r"items\.parquet, column 'item_id': column has nested type"):
        load_files(_cfg(log_path, items=str(items)))
