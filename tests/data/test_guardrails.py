"""Data guardrails (each check, named once in config.CHECK_NAMES) and a retrain on corrupted real data failing before
training."""

import json
from datetime import datetime, timedelta, timezone

import polars as pl
import pytest

from recsys_lab.config import ValidateConfig
from recsys_lab.data.guardrails import CHECKS, DataQualityWarning, validate
from recsys_lab.errors import DataValidationError

from ..conftest import cli, copy_movielens


def _run(inter, users, items, **kw):
    return validate(inter, users, items, ValidateConfig(**kw.pop("cfg", {})), **kw)


def test_clean_data_passes_every_check(tiny_tables):
    report = _run(*tiny_tables, weight_range=(1, 5), positive_threshold=4)
    assert set(report.to_dict()) == set(CHECKS) and not any(report.to_dict().values())
    assert report.table().height == len(CHECKS)


@pytest.mark.parametrize("check, corrupt, expected", [
    ("null_keys", lambda i, u, t: (i.with_columns(pl.when(pl.int_range(pl.len()) < 2).then(None)
                                                  .otherwise(pl.col("user_id")).alias("user_id")), u, t), 2),
    ("duplicates", lambda i, u, t: (pl.concat([i, i.head(3), i.head(1)]), u, t), 4),
    ("weight_range", lambda i, u, t: (i.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(9.0)
                                                     .otherwise(pl.col("weight")).alias("weight")), u, t), 1),
    ("future_ts", lambda i, u, t: (i.with_columns(pl.when(pl.int_range(pl.len()) < 3)
                                                  .then(pl.lit(datetime.now(timezone.utc) + timedelta(days=30)))
                                                  .otherwise(pl.col("ts")).alias("ts")), u, t), 3),
    ("old_ts", lambda i, u, t: (i.with_columns(pl.when(pl.int_range(pl.len()) == 5)
                                               .then(pl.lit(datetime(1970, 1, 1, tzinfo=timezone.utc)))
                                               .otherwise(pl.col("ts")).alias("ts")), u, t), 1),
    ("unknown_users", lambda i, u, t: (i, u.filter(pl.col("user_id") != 1), t), 3),
    ("unknown_items", lambda i, u, t: (i, u, t.filter(pl.col("item_id") != 4)), 3),
    ("user_table_keys", lambda i, u, t: (i, pl.concat([u, u.head(1)]), t), 1),
    ("item_table_keys", lambda i, u, t: (i, u, pl.concat([t, t.tail(2)])), 2),
    ("empty", lambda i, u, t: (i.with_columns(pl.lit(1.0).alias("weight")), u, t), 1),
])
def test_each_check_fails_with_count_and_examples(tiny_tables, check, corrupt, expected):
    inter, users, items = corrupt(*tiny_tables)
    with pytest.raises(DataValidationError, match=rf"- {check} \(\w+\): {expected} ") as info:
        _run(inter, users, items, weight_range=(1, 5), positive_threshold=4, source="tiny.parquet")
    (failure,) = info.value.failures
    assert failure["check"] == check and failure["count"] == expected
    assert 1 <= len(failure["examples"]) <= 5
    assert str(info.value).startswith(f"tiny.parquet: data validation failed: {check} ({expected} ")


def test_every_failed_check_is_listed_at_once(tiny_tables):
    inter, users, items = tiny_tables
    bad = pl.concat([inter, inter.head(2)]).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col("item_id")).alias("item_id"))
    with pytest.raises(DataValidationError) as info:
        _run(bad, users.filter(pl.col("user_id") != 2), items, weight_range=(1, 5), positive_threshold=4)
    assert {f["check"] for f in info.value.failures} == {"null_keys", "duplicates", "unknown_users"}
    # the first line (what the CLI prints) names every failed check with its count, not just how many
    first = str(info.value).splitlines()[0]
    for f in info.value.failures:
        assert f"{f['check']} ({f['count']} " in first


def test_warn_level_checks_warn_and_pass(tiny_tables):
    inter, users, items = tiny_tables
    with pytest.warns(DataQualityWarning, match="duplicates: 1 duplicate"):
        report = _run(pl.concat([inter, inter.head(1)]), users, items, cfg={"warn": ("duplicates",)},
                      weight_range=(1, 5), positive_threshold=4)
    assert report.warned[0]["check"] == "duplicates" and not report.failed


def test_implicit_weights_use_the_transformed_threshold(tiny_tables):
    inter, users, items = tiny_tables
    plays = inter.with_columns(pl.lit(1.0).alias("weight"))  # one play each: log1p(1) = 0.69
    with pytest.raises(DataValidationError, match="empty"):
        _run(plays, users, items, positive_threshold=1.0, weight_transform="log1p")
    _run(plays, users, items, positive_threshold=0.5, weight_transform="log1p")


@pytest.mark.slow  # a CLI retrain
def test_retrain_on_corrupted_data_fails_before_training(ml100k_source, tmp_path):
    bad = copy_movielens(ml100k_source, tmp_path / "bad-ml")
    lines = (bad / "u.data").read_text().splitlines()
    lines[0] = "\t242\t3\t881250949"           # null user id
    lines[1] = "186\t302\t3\t4102444800"        # year 2100: future
    lines[2] = "22\t377\t1\t100"                # 1970: implausibly old
    lines[3] = "5000\t51\t2\t880606923"         # unknown user
    lines[4] = "166\t9999\t1\t886397596"        # unknown item
    lines[5] = "298\t474\t9\t884182806"         # rating 9
    lines += lines[10:13]                       # duplicates
    (bad / "u.data").write_text("\n".join(lines) + "\n")
    (tmp_path / "runs" / "20260101T000000Z-prod00").mkdir(parents=True)  # a production run to leave untouched
    (tmp_path / "runs" / "20260101T000000Z-prod00" / "run.json").write_text('{"run_id": "20260101T000000Z-prod00"}')
    (tmp_path / "runs" / "PRODUCTION").write_text("20260101T000000Z-prod00\n")
    proc = cli("retrain", "--data", bad, "--promote", cwd=tmp_path)
    assert proc.returncode == 1
    assert "DataValidationError" in proc.stderr
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and p.name != "20260101T000000Z-prod00"]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["error"]["ename"] == "DataValidationError"
    message = manifest["error"]["evalue"]
    for check, count in (("null_keys", 1), ("future_ts", 1), ("old_ts", 1), ("unknown_users", 1),
                         ("unknown_items", 1), ("weight_range", 1), ("duplicates", 3)):
        assert f"- {check} (interactions): {count} " in message, check
    assert not (run / "artifacts" / "model.npz").exists() and not (run / "metrics.json").exists()
    assert (tmp_path / "runs" / "PRODUCTION").read_text() == "20260101T000000Z-prod00\n"
    assert not list((tmp_path / "warehouse" / "snapshots").glob("*.duckdb"))  # bad data never became a snapshot


def test_a_log_without_timestamps_skips_the_time_rules(tiny_tables):
    inter, users, items = tiny_tables
    no_time = inter.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("ts"))
    with pytest.raises(DataValidationError, match="null_keys"):
        _run(no_time, users, items, weight_range=(1, 5), positive_threshold=4)
    report = _run(no_time, users, items, weight_range=(1, 5), positive_threshold=4, has_time=False)
    assert not report.failed


def test_check_names_are_config_check_names_in_order(tiny_tables):
    """One list of names (config.CHECK_NAMES); the checks derive from it, and every name runs."""
    from recsys_lab.config import CHECK_NAMES

    assert tuple(CHECKS) == CHECK_NAMES
    report = _run(*tiny_tables, weight_range=(1, 5), positive_threshold=4)
    assert tuple(r["check"] for r in report.results) == CHECK_NAMES
    assert ValidateConfig(warn=CHECK_NAMES).warn == CHECK_NAMES


def test_numbers_are_bound_parameters_never_sql_text(tiny_tables):
    """A non-finite threshold was pasted into the SQL text (`weight >= nan`: a DuckDB binder error, untyped); the
    numbers are bound parameters now, so the checks still run and report in their own words."""
    inter, users, items = tiny_tables
    with pytest.raises(DataValidationError, match=r"empty \(interactions\): 1 no positive interaction left after filtering "
                                                  r"\(weight  >= nan\)"):
        _run(inter, users, items, weight_range=(1, 5), positive_threshold=float("nan"))
    report = _run(inter, users, items, weight_range=(1, float("inf")), positive_threshold=4)
    assert report.to_dict()["weight_range"] == 0
