"""serving.updates: a version folds new interactions into user vectors, is listed, served, and a damaged version
file is named."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from recsys_lab import serving
from recsys_lab.errors import DataFileError, RunError
from recsys_lab.store.folder import RunFolder


@pytest.fixture()
def runs(saved, tmp_path):
    runs_dir, folder = saved
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    return copy, RunFolder(copy / folder.run_id)


def _write(path, rows):
    pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row").write_csv(path)
    return path


def test_an_update_is_a_complete_version_that_serving_uses(runs, tmp_path):
    runs_dir, folder = runs
    with pytest.warns(serving.ColdStartWarning, match="unknown to run"):
        man = serving.update(runs_dir, _write(tmp_path / "new.csv", [(1, 6, 5, 1_600_000_000),
                                                                     (50, 3, 5, 1_600_000_001),
                                                                     (50, 77, 5, 1_600_000_002)]))
    assert (man["rows_read"], man["rows_used"], man["unknown_items_skipped"], man["new_users"]) == (3, 2, 1, 1)
    listed = serving.updates(runs_dir)
    assert listed["version"].to_list() == [man["version"]] and listed["users_updated"].to_list() == [2]
    recs = serving.recommend(runs_dir, 50, run="production", k=3)
    assert set(recs["path"]) == {"update"} and 3 not in set(recs["item_id"])
    assert 6 not in set(serving.recommend(runs_dir, 1, run="production", k=3)["item_id"])
    # a damaged version file is named (fresh process state: another copy of the runs directory)
    copy = tmp_path / "again"
    shutil.copytree(runs_dir, copy)
    vecs = copy / folder.run_id / "artifacts" / "updates" / man["version"] / "user_vecs.npz"
    vecs.write_bytes(vecs.read_bytes()[:40])
    with pytest.raises(RunError, match=f"^{vecs}: cannot read \\("):
        serving.recommend(copy, 50, run="production")
    with pytest.raises(RunError, match="no update version 'nope'"):
        serving.recommend(copy, 50, run="production", version="nope")


def test_fractional_ids_are_refused_not_truncated(runs, tmp_path):
    """An update's user id 13.7 was cast to 13 (silently folding it into another user's vector)."""
    runs_dir, _ = runs
    path = tmp_path / "frac.csv"
    path.write_text("user_id,item_id,rating,timestamp\n1,6,5,1600000000\n13.7,3,5,1600000001\n")
    with pytest.raises(DataFileError, match=r"frac\.csv, line 3, column 'user_id': id 13\.7 is not of the run's "
                                            r"id type \(integer\)"):
        serving.update(runs_dir, path)
    assert serving.updates(runs_dir).height == 0


def test_an_update_with_a_nested_parquet_column_is_refused_by_name(runs, tmp_path):
    runs_dir, _ = runs
    path = tmp_path / "nested.parquet"
    pl.DataFrame({"user_id": [1], "item_id": [[6]], "rating": [5], "timestamp": [1_600_000_000]}).write_parquet(path)
    with pytest.raises(DataFileError, match=r"nested\.parquet, column 'item_id': column has nested type"):
        serving.update(runs_dir, path)
