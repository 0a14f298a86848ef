"""serving.updates: a version folds new interactions into user vectors, is listed, served, and a damaged version
file is named."""

from __future__ import annotations

import shutil

import polars as pl
import pytest

from recsys_lab import serving
from recsys_lab.errors import RunError
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
