"""``recsys-lab backfill``: cut-off dates, ``data.until`` at ingest, and a 3-point backfill on generated data whose
runs have increasing cut-offs and make 3 points on the monitoring page."""

from __future__ import annotations

import re

import polars as pl
import pytest

from recsys_lab.cli.main import main
from recsys_lab.config import Config
from recsys_lab.data.sources import load, until
from recsys_lab.data.tables import Tables
from recsys_lab.errors import ConfigError
from recsys_lab.ops.backfill import MAX_POINTS, cutoffs
from recsys_lab.runs.registry import history
from recsys_lab.store.folder import read_manifest

from .conftest import make_project, tiny_config


def test_cutoffs_are_spaced_and_include_the_end():
    assert cutoffs("1997-10-01", "1998-03-01", "30d") == ["1997-10-01", "1997-10-31", "1997-11-30", "1997-12-30",
                                                         "1998-01-29", "1998-02-28"]
    assert cutoffs("2024-01-01", "2024-01-15", "7d") == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert cutoffs("2024-01-01", "2024-01-01T18:00", "12h") == ["2024-01-01", "2024-01-01T12:00:00+00:00"]


@pytest.mark.parametrize("args, parameter", [(("1998-13-01", "1999-01-01", "7d"), "--from"),
                                             (("1998-01-01", "soon", "7d"), "--to"),
                                             (("1998-02-01", "1998-01-01", "7d"), "--to"),
                                             (("1998-01-01", "1998-02-01", "weekly"), "--every"),
                                             (("1998-01-01", "1998-02-01", "0d"), "--every"),
                                             (("1990-01-01", "1999-01-01", "1d"), "--every")])
def test_bad_cutoffs_are_config_errors_naming_the_option(args, parameter):
    with pytest.raises(ConfigError, match=re.escape(parameter)):
        cutoffs(*args)
    assert MAX_POINTS < 3287


def test_data_until_is_validated_and_cuts_the_log(tmp_path):
    with pytest.raises(ConfigError, match="data.until"):
        Config().replace({"data.until": "last week"})
    cfg = tiny_config(tmp_path)
    full, _ = load(cfg.data)
    cut, _ = load(cfg.replace({"data.until": "2024-07-01"}).data)
    assert 0 < cut.interactions.height < full.interactions.height
    assert str(cut.interactions["ts"].max()) < "2024-07-01"
    assert cut.items.height == full.items.height  # only the interactions are cut


def test_until_needs_timestamps():
    tables = Tables(pl.DataFrame({"user_id": [1], "item_id": [1], "weight": [1.0], "ts": [None]}), pl.DataFrame(),
                    pl.DataFrame(), "x", has_time=False)
    with pytest.raises(ConfigError, match="data.until"):
        until(tables, "2024-01-01")


def test_backfill_with_a_bad_date_exits_2_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["backfill", "--from", "1998-01-01", "--to", "someday"]) == 2
    assert "--to" in capsys.readouterr().err and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_three_point_backfill_makes_three_runs_with_increasing_cutoffs_and_three_points(tmp_path, monkeypatch,
                                                                                       capsys):
    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    assert main(["backfill", "--from", "2024-06-01", "--to", "2024-08-01", "--every", "30d"]) == 0
    out = capsys.readouterr().out
    assert "config: ./config.toml" in out and out.count("\nas of 2024-") == 3
    h = history("runs")
    assert h.height == 3 and h["status"].to_list() == ["succeeded"] * 3
    assert h["until"].to_list() == ["2024-06-01", "2024-07-01", "2024-07-31"]
    assert h["backfill"].all() and not h["promoted"].any()  # never promoted unless asked
    assert not (project / "runs" / "PRODUCTION").exists()
    firsts = [read_manifest(project / "runs" / r)["backfill"] for r in h["run_id"]]
    assert [b["until"] for b in firsts] == h["until"].to_list() and len({b["batch"] for b in firsts}) == 1
    n_train = [read_manifest(project / "runs" / r)["data"]["split"]["n_train"] for r in h["run_id"]]
    assert n_train == sorted(n_train) and n_train[0] < n_train[-1]  # more data before each later cut-off
    page = (project / "runs" / "index.html").read_text()
    assert page.count('class="point"') == 6  # 3 runs: ndcg and recall (all candidates)
    assert "candidates (3)" in page and "production (0)" in page
    for rid in h["run_id"]:
        assert f'href="{rid}/report.html"' in page
