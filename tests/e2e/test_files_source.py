"""Any interaction log: Parquet play counts (string ids) + an item table of categories, through ingest,
retrain and report with configuration only."""

import json

import numpy as np
import polars as pl
import pytest

from ..conftest import cli

pytestmark = [pytest.mark.slow]  # retrains through the CLI on a generated log


@pytest.fixture(scope="module")
def plays_project(tmp_path_factory):
    """300 listeners who each prefer one genre; 400 tracks; play counts; a year of timestamps."""
    d = tmp_path_factory.mktemp("plays")
    rng = np.random.default_rng(0)
    genres = np.array(["rock", "pop", "jazz", "hiphop"])
    track_genre = genres[np.arange(400) % 4]
    n = 30_000
    listener = rng.integers(0, 300, n)
    pick_same = rng.random(n) < 0.8
    track = np.where(pick_same, (rng.zipf(1.3, n) % 100) * 4 + (listener % 4), rng.integers(0, 400, n))
    ts = np.sort(rng.integers(1_600_000_000, 1_631_536_000, n))
    pl.DataFrame({"listener": [f"u{u}" for u in listener], "track": [f"t{t}" for t in track],
                  "plays": rng.poisson(2, n) + 1, "played_at": ts}).write_parquet(d / "plays.parquet")
    pl.DataFrame({"track": [f"t{i}" for i in range(400)], "name": [f"Track {i}" for i in range(400)],
                  "genre": track_genre, "tags": [["live", "remaster"] if i % 3 else ["studio"] for i in range(400)],
                  "duration_s": rng.integers(120, 400, 400)}).write_parquet(d / "tracks.parquet")
    (d / "plays.toml").write_text("""
[data]
source = "files"
interactions = "plays.parquet"
items = "tracks.parquet"
user_col = "listener"
item_col = "track"
time_col = "played_at"
weight_col = "plays"
weight_transform = "log1p"
positive_threshold = 1.0
title_col = "name"

[features]
item = ["genre", "tags", "duration_s"]
windows = [30]
window_category = "genre"

[model]
num_threads = 1
""")
    return d


def test_ingest_cli_stores_a_snapshot(plays_project):
    proc = cli("ingest", "-c", "plays.toml", cwd=plays_project)
    assert proc.returncode == 0, proc.stderr
    assert "30000 interactions, 300 users, 400 items" in proc.stdout and "null_keys" in proc.stdout
    flags = cli("ingest", "--interactions", "plays.parquet", "--items", "tracks.parquet", "--user-col", "listener",
                "--item-col", "track", "--time-col", "played_at", "--weight-col", "plays", "--title-col", "name",
                cwd=plays_project)
    assert flags.returncode == 0, flags.stderr
    assert proc.stdout.split()[1] == flags.stdout.split()[1]  # same data, same snapshot id


def test_missing_column_is_named(plays_project):
    proc = cli("ingest", "-c", "plays.toml", "-p", "data.user_col", "user", cwd=plays_project)
    assert proc.returncode == 1
    assert "plays.parquet, column 'user': missing column 'user'" in proc.stderr and "'listener'" in proc.stderr


def test_retrain_and_report_on_play_counts(plays_project):
    proc = cli("retrain", "-c", "plays.toml", cwd=plays_project)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = [p for p in (plays_project / "runs").iterdir() if p.is_dir()]
    m = json.loads((run / "metrics.json").read_text())
    # the genre preference is learnable: the hybrid beats popularity on this log
    assert m["ndcg@10"] > m["baseline.popularity.ndcg@10"]
    # the time-windowed variant is measured against the static hybrid on the same split
    assert "baseline.lightfm_static.ndcg@10" in m
    ids = np.load(run / "artifacts" / "id_maps.npz")
    assert ids["user_ids"][0].startswith("u") and ids["item_ids"][0].startswith("t")
    html = (run / "report.html").read_text()
    assert "lightfm_static" in html and "data:image/png" in html
    top = cli("recommend", "--user", "u7", "-k", "5", cwd=plays_project)
    assert top.returncode == 0, top.stderr
    assert "Track " in top.stdout
