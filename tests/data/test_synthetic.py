"""The synthetic log generator: sizes, id ranges, Zipf shape, determinism, and a files-source round trip."""

import numpy as np
import polars as pl
import pytest

from recsys_lab.cli.main import main
from recsys_lab.data import synthetic
from recsys_lab.data.files import load_files
from recsys_lab.errors import ConfigError


@pytest.fixture(scope="module")
def log():
    return synthetic.generate(2_000, 5_000, 200_000, seed=3)


def test_sizes_and_id_ranges(log):
    inter, items = log.interactions, log.items
    assert inter.height == 200_000 and items.height == 5_000
    assert inter["user_id"].n_unique() == 2_000  # every user has a row
    assert inter["user_id"].min() == 0 and inter["user_id"].max() == 1_999
    assert inter["item_id"].min() >= 0 and inter["item_id"].max() < 5_000
    assert inter["weight"].min() >= 1
    assert inter.select(pl.struct("user_id", "item_id", "ts").is_duplicated().any()).item() is False
    span = inter["ts"].max() - inter["ts"].min()
    assert 360 <= span.days <= 365
    assert set(items.columns) == {"item_id", "title", "category"} and items["category"].n_unique() == 50


def test_item_popularity_is_zipf(log):
    counts = np.sort(np.bincount(log.interactions["item_id"].to_numpy(), minlength=5_000))[::-1]
    ranks = np.arange(1, len(counts) + 1)
    head = (ranks >= 5) & (ranks <= 1_000)
    slope = np.polyfit(np.log(ranks[head]), np.log(counts[head]), 1)[0]
    assert -1.2 < slope < -0.8  # exponent 1 by default


def test_user_activity_is_skewed_and_taste_is_concentrated(log):
    per_user = np.bincount(log.interactions["user_id"].to_numpy())
    assert np.median(per_user) < per_user.mean() < np.percentile(per_user, 95)  # lognormal: long right tail
    joined = log.interactions.join(log.items, on="item_id")
    top_share = (joined.group_by("user_id", "category").len().group_by("user_id").agg(pl.col("len").max() / pl.col("len").sum())
                 .filter(pl.col("user_id").is_in(np.flatnonzero(per_user >= 50).tolist()))["len"].mean())
    assert top_share > 0.35  # favourite category (0.48 of draws by design) vs 1/50 without taste


def test_same_seed_same_log():
    a = synthetic.generate(50, 40, 500, seed=9)
    b = synthetic.generate(50, 40, 500, seed=9)
    assert a.interactions.equals(b.interactions) and a.items.equals(b.items)
    assert not a.interactions.equals(synthetic.generate(50, 40, 500, seed=10).interactions)


def test_bad_sizes():
    with pytest.raises(ConfigError, match="at least one interaction per user"):
        synthetic.generate(100, 10, 50)
    with pytest.raises(ConfigError, match="at least 1 item"):
        synthetic.generate(10, 0, 50)


def test_generate_command_writes_files_the_files_source_reads(tmp_path, capsys):
    assert main(["generate", "--users", "30", "--items", "20", "--interactions", "400", "--out",
                 str(tmp_path / "log"), "--seed", "1"]) == 0
    snippet = capsys.readouterr().out
    assert 'source = "files"' in snippet
    toml = snippet[snippet.index("[data]"):]
    (tmp_path / "c.toml").write_text(toml)
    from recsys_lab.config import load_config

    cfg = load_config(tmp_path / "c.toml")
    tables = load_files(cfg.data)
    assert tables.interactions.height == 400 and tables.items.height == 20
    assert tables.items["title"][0].startswith("item 0")
