import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from recsys_lab.data.movielens import (
    GENRES,
    N_INTERACTIONS,
    N_ITEMS,
    N_USERS,
    RATING_RANGE,
    download_movielens_100k,
    load_movielens_100k,
    resolve_source,
)
from recsys_lab.errors import DataFileError, DownloadError

# ml_copy: tests/data/conftest.py


def test_real_movielens_shapes_and_types(ml100k):
    assert ml100k.interactions.height == N_INTERACTIONS == 100_000
    assert ml100k.users.height == N_USERS == 943
    assert ml100k.items.height == N_ITEMS == 1682
    assert ml100k.interactions["weight"].is_between(*RATING_RANGE).all()
    assert set(ml100k.interactions["weight"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert ml100k.interactions["ts"].dtype.time_zone == "UTC"
    titles = dict(zip(ml100k.items["item_id"], ml100k.items["title"]))
    assert titles[1] == "Toy Story (1995)"
    assert titles[543] == "Misérables, Les (1995)"  # latin-1 decoded
    toy = ml100k.items.filter(ml100k.items["item_id"] == 1)["genre"][0].to_list()
    assert toy == ["Animation", "Children's", "Comedy"]
    assert set(ml100k.items["genre"].explode().unique()) <= set(GENRES)


def test_directory_and_zip_load_the_same(ml_copy, tmp_path):
    zpath = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in ml_copy.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    a, b = load_movielens_100k(ml_copy), load_movielens_100k(zpath)
    assert a.interactions.equals(b.interactions) and a.items.equals(b.items) and a.users.equals(b.users)


def test_resolve_source_accepts_parent_folder_and_env(ml_copy, tmp_path, monkeypatch):
    parent = tmp_path / "parent"
    shutil.copytree(ml_copy, parent / "ml-100k")
    assert resolve_source(parent) == parent / "ml-100k"
    monkeypatch.setenv("RECSYS_LAB_DATA_DIR", str(ml_copy))
    assert resolve_source(None, warehouse=tmp_path / "wh") == ml_copy
    monkeypatch.setenv("RECSYS_LAB_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataFileError, match="nowhere: does not exist .from RECSYS_LAB_DATA_DIR"):
        resolve_source(None, warehouse=tmp_path / "wh")


def test_missing_file_is_named(ml_copy):
    (ml_copy / "u.user").unlink()
    with pytest.raises(DataFileError, match=r"u\.user: required MovieLens 100k file is missing"):
        load_movielens_100k(ml_copy)


def test_truncated_file_names_file_and_line(ml_copy):
    data = (ml_copy / "u.data").read_bytes()
    cut = data[: len(data) // 2]
    cut = cut[: cut.rindex(b"\t")]  # stop mid-line
    (ml_copy / "u.data").write_bytes(cut)
    n_lines = cut.count(b"\n") + 1
    with pytest.raises(DataFileError, match=rf"u\.data, line {n_lines}: expected 4 fields") as info:
        load_movielens_100k(ml_copy)
    assert info.value.line == n_lines


def test_bad_value_names_line_and_column(ml_copy):
    lines = (ml_copy / "u.data").read_text().splitlines()
    lines[41] = "196\t242\tthree\t881250949"
    (ml_copy / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"u\.data, line 42, column 'weight': expected Float64, got 'three'"):
        load_movielens_100k(ml_copy)


def test_bad_release_date_is_named(ml_copy):
    text = (ml_copy / "u.item").read_bytes().decode("latin-1").replace("01-Jan-1995", "1995/01/01", 1)
    (ml_copy / "u.item").write_bytes(text.encode("latin-1"))
    with pytest.raises(DataFileError, match=r"u\.item, line 1, column 'release_date'"):
        load_movielens_100k(ml_copy)


def test_corrupt_zip_is_a_typed_error(tmp_path):
    bad = tmp_path / "ml-100k.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataFileError, match="not a readable zip archive"):
        load_movielens_100k(bad)


def _zip_of(ml_copy: Path, path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for f in ml_copy.iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    return path


def test_download_checks_md5_and_is_atomic(ml_copy, tmp_path):
    src = _zip_of(ml_copy, tmp_path / "served.zip")
    md5 = hashlib.md5(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="does not match the published"):
        download_movielens_100k(cache, url=src.as_uri(), md5="0" * 32)
    assert list(cache.iterdir()) == []  # no partial or wrong file left
    with pytest.raises(DownloadError, match="download failed"):
        download_movielens_100k(cache, url=(tmp_path / "absent.zip").as_uri(), md5=md5)
    assert list(cache.iterdir()) == []
    got = download_movielens_100k(cache, url=src.as_uri(), md5=md5)
    assert got == cache / "ml-100k.zip" and [p.name for p in cache.iterdir()] == ["ml-100k.zip"]
    assert load_movielens_100k(got).interactions.height == N_INTERACTIONS


def test_millisecond_timestamps_in_u_data_are_a_typed_error_naming_the_line(ml_copy):
    """Epoch milliseconds pasted into u.data overflowed the conversion (an untyped OverflowError)."""
    lines = (ml_copy / "u.data").read_text().splitlines()
    lines[9] = "196\t242\t3\t881250949000"
    (ml_copy / "u.data").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFileError, match=r"u\.data, line 10, column 'ts': 1 timestamp\(s\) too large for epoch "
                                            r"seconds \(first 881250949000.*milliseconds\?"):
        load_movielens_100k(ml_copy)
