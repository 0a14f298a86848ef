"""Report tables a reviewer reads: the guardrails say passed / failed, the data section has no repr or local path."""

from __future__ import annotations

from datetime import datetime, timezone

import polars as pl

from recsys_lab.data.guardrails import ValidationReport
from recsys_lab.evaluation.gate import GateResult
from recsys_lab.report import tables


def _results(**found: int) -> ValidationReport:
    names = ("null_keys", "duplicates", "weight_range")
    return ValidationReport(results=[
        {"check": n, "table": "interactions", "description": f"rows breaking {n}", "count": found.get(n, 0),
         "severity": "warn" if n == "duplicates" else "fail", "examples": []} for n in names])


def test_guardrails_of_a_clean_snapshot_all_read_passed():
    """The bug: ``ValidationReport.table()`` shows each check's configured severity, ``fail`` on every clean row."""
    report = _results()
    assert report.table()["severity"].to_list() == ["fail", "warn", "fail"]  # what the report used to show
    table = tables.guardrail_table(report)
    assert table["result"].to_list() == ["passed", "passed", "passed"]
    assert table.columns == ["check", "table", "rows_found", "result", "description"]


def test_guardrail_findings_read_warning_or_failed():
    table = tables.guardrail_table(_results(duplicates=12, weight_range=3))
    assert dict(zip(table["check"], table["result"])) == {"null_keys": "passed", "duplicates": "warning",
                                                          "weight_range": "failed"}
    assert table["rows_found"].to_list() == [0, 12, 3]


def test_snapshot_table_has_no_repr_and_no_local_path():
    info = {"id": "50e8f670ceefaded", "hash": "ab" * 32, "source": "/home/someone/data/ml-100k/u.data",
            "created_at": datetime(2026, 12, 3, 8, 33, 2, 98339, tzinfo=timezone.utc), "n_interactions": 100000}
    table = tables.snapshot_table(info)
    text = " ".join(table["value"])
    assert "datetime" not in text and "/home/someone" not in text and "{" not in text
    assert dict(zip(table["field"], table["value"])) == {
        "id": "50e8f670ceefaded", "hash": "ab" * 32, "source": "u.data", "created at": "2026-12-03 08:33:02 UTC",
        "n interactions": "100,000"}


def test_public_text_cuts_absolute_paths_only():
    assert tables.public_text("movielens:/work/shared/data/ml-100k") == "movielens:ml-100k"
    assert tables.public_text("files (/a/b.csv, /c/d.csv)") == "files (b.csv, d.csv)"
    assert tables.public_text("https://example.com/a/b") == "https://example.com/a/b"
    assert tables.public_text("relative/path.csv") == "relative/path.csv"


def test_split_table_rounds_shares():
    table = tables.split_table({"method": "time_per_user", "n_train": 72234, "cold_user_share": 0.10204081632653061})
    assert table["value"].to_list() == ["time_per_user", "72,234", "0.102"]


def test_gate_view_is_a_sentence_without_checks_and_the_table_otherwise():
    assert "No gate check is configured" in tables.gate_view(GateResult(passed=True, checks=[])).data
    check = {"metric": "ndcg@10", "kind": "min", "value": 0.2, "bound": 0.05, "production": None, "passed": True,
             "message": "ndcg@10 = 0.2 >= floor 0.05"}
    view = tables.gate_view(GateResult(passed=True, checks=[check]))
    assert isinstance(view, pl.DataFrame) and view["passed"].to_list() == [True]
