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


def test_an_update_on_a_full_disk_is_one_typed_error_and_leaves_no_version(runs, tmp_path, monkeypatch, capsys):
    """``update`` on a full disk printed a traceback; a failed write must add no (half-written) version."""
    import errno

    from recsys_lab import _fs
    from recsys_lab.cli.main import main
    from recsys_lab.serving.updates import WriteError

    runs_dir, folder = runs
    first = serving.update(runs_dir, _write(tmp_path / "a.csv", [(1, 6, 5, 1_600_000_000)]))
    writes = []

    def full(path, write):
        writes.append(path)
        if len(writes) >= 3:  # user_vecs.npz and interactions.parquet written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    real = _fs.atomic_write_with
    monkeypatch.setattr(_fs, "atomic_write_with", full)
    with pytest.raises(WriteError, match=rf"^{folder.updates}/\S+: cannot write the update version \(disk full: "
                                         r"No space left on device\)$") as caught:
        serving.update(runs_dir, _write(tmp_path / "b.csv", [(2, 6, 5, 1_600_000_001)]))
    assert caught.value.errno == errno.ENOSPC and len(writes) == 3
    assert serving.updates(runs_dir)["version"].to_list() == [first["version"]]
    assert sorted(p.name for p in folder.updates.iterdir()) == [".lock", first["version"]]  # no temp folder left
    writes.clear()
    capsys.readouterr()
    assert main(["update", "--interactions", str(tmp_path / "b.csv"), "--runs-dir", str(runs_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "cannot write the update version (disk full" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert serving.updates(runs_dir).height == 1


def test_update_version_folders_honour_the_umask(runs, tmp_path):
    """Version folders were always 0700 (``tempfile.mkdtemp``) whatever the umask."""
    import os

    runs_dir, folder = runs
    old = os.umask(0o022)
    try:
        man = serving.update(runs_dir, _write(tmp_path / "a.csv", [(1, 6, 5, 1_600_000_000)]))
    finally:
        os.umask(old)
    assert (folder.updates / man["version"]).stat().st_mode & 0o777 == 0o755
