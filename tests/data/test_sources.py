"""Which source a [data] section names: the MovieLens preset or files, and how update files are read."""

from pathlib import Path

import polars as pl

from recsys_lab.config import Config
from recsys_lab.data import movielens
from recsys_lab.data.files import load_files
from recsys_lab.data.sources import load, update_source, weight_range


def test_movielens_preset_loads_with_the_rating_range(ml100k_source, tmp_path):
    cfg = Config().replace({"data.path": str(ml100k_source), "data.warehouse": str(tmp_path)}).data
    tables, rng = load(cfg)
    assert rng == movielens.RATING_RANGE == weight_range(cfg)
    assert tables.interactions.height == movielens.N_INTERACTIONS


def test_files_source_uses_its_configured_range(tmp_path):
    path = tmp_path / "log.csv"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "plays": [2, 7]}).write_csv(path)
    cfg = Config().replace({"data.source": "files", "data.interactions": str(path), "data.weight_col": "plays",
                            "data.time_col": "", "data.weight_range": [0, 100]}).data
    tables, rng = load(cfg)
    assert rng == (0.0, 100.0) and tables.interactions["weight"].to_list() == [2.0, 7.0]
    assert not tables.has_time


def test_update_files_of_a_movielens_run_are_read_as_u_data_fields(tmp_path):
    path = tmp_path / "new.csv"
    path.write_text("user_id,item_id,rating,timestamp\n13,50,5,893000000\n")
    cfg, rng = update_source(Config().data, path)
    assert rng == movielens.RATING_RANGE and cfg.source == "files" and Path(cfg.interactions) == path
    inter = load_files(cfg).interactions
    assert inter.select("user_id", "item_id", "weight").row(0) == (13, 50, 5.0)
    assert inter["ts"][0].year == 1998


def test_update_files_of_a_files_run_keep_its_column_mapping(tmp_path):
    cfg = Config().replace({"data.source": "files", "data.interactions": "old.parquet", "data.items": "items.parquet",
                            "data.user_col": "listener", "data.weight_col": "plays"}).data
    new, rng = update_source(cfg, tmp_path / "new.csv")
    assert rng == () and new.user_col == "listener" and new.weight_col == "plays" and new.items is None
    assert new.interactions == str(tmp_path / "new.csv")
