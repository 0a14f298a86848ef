"""``runs check``: a run succeeded within the SLA and production is fresh, else exit 6 and the ``sla`` alert."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from recsys_lab.cli.exits import EXIT_STALE
from recsys_lab.cli.main import main
from recsys_lab.config import Config
from recsys_lab.ops.alerts import ALERTS_FILE
from recsys_lab.ops.sla import check, check_and_alert, format_age
from recsys_lab.store.folder import PRODUCTION

from ..runs.conftest import plant_run

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def _at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat(timespec="seconds")


def _plant(runs, name, hours_ago, **kw):
    return plant_run(runs, name, started_at=_at(hours_ago + 0.1), ended_at=_at(hours_ago), **kw)


def test_fresh_success_and_fresh_production_pass(tmp_path):
    _plant(tmp_path, "20260601T000000Z-aaaaaa", 12)
    (tmp_path / PRODUCTION).write_text("20260601T000000Z-aaaaaa\n")
    r = check(tmp_path, now=NOW)
    assert r.ok and r.problems == [] and r.production == r.newest_success == "20260601T000000Z-aaaaaa"


def test_sla_missed_when_only_failures_are_recent(tmp_path):
    _plant(tmp_path, "20260530T000000Z-aaaaaa", 60)
    _plant(tmp_path, "20260601T000000Z-bbbbbb", 2, status="failed")
    (tmp_path / PRODUCTION).write_text("20260530T000000Z-aaaaaa\n")
    r = check(tmp_path, sla="26h", max_production_age="3d", now=NOW)
    assert not r.ok and r.newest == "20260601T000000Z-bbbbbb"
    assert r.problems == ["SLA missed: no run succeeded in the last 26h (newest: 20260530T000000Z-aaaaaa, 2d 12h "
                          "ago)"]
    stale = check(tmp_path, sla="0h", max_production_age="1d", now=NOW)
    assert stale.problems == ["production 20260530T000000Z-aaaaaa is stale: 2d 12h old (max 1d)"]


def test_empty_runs_directory_and_no_production(tmp_path):
    r = check(tmp_path, now=NOW)
    assert r.problems == ["SLA missed: no run succeeded in the last 26h (no succeeded run at all)",
                          "no production run"]
    assert check(tmp_path, sla="0h", max_production_age="0d", now=NOW).ok


def test_format_age():
    assert [format_age(s) for s in (5, 125, 3 * 3600 + 60, 90000)] == ["5s", "2m", "3h 1m", "1d 1h"]


def test_check_and_alert_records_in_the_runs_directory(tmp_path, webhook):
    _plant(tmp_path, "20260101T000000Z-aaaaaa", 24 * 200)
    cfg = Config().replace({"alerts.urls": [webhook.url]})
    result, (rec,) = check_and_alert(tmp_path, cfg)
    assert not result.ok and rec["rule"] == "sla" and rec["severity"] == "critical"
    assert rec["deliveries"][0]["delivered"] is True
    assert json.loads((tmp_path / ALERTS_FILE).read_text()) == [rec]
    _, none = check_and_alert(tmp_path, cfg.replace({"alerts.rules": ["failed"]}))
    assert none == []  # the sla rule switched off: the check still fails, nobody is told


def test_runs_check_after_a_stale_production_exits_6_and_alerts(tmp_path, webhook, capsys, monkeypatch):
    runs = tmp_path / "runs"
    run = plant_run(runs, "20260101T000000Z-aaaaaa", started_at="2026-01-01T00:00:00+00:00",
                    ended_at="2026-01-01T00:05:00+00:00", promoted=True)
    (runs / PRODUCTION).write_text(run.name + "\n")
    (tmp_path / "config.toml").write_text(f'[alerts]\nurls = ["{webhook.url}"]\n')
    monkeypatch.chdir(tmp_path)
    assert main(["runs", "check", "--sla", "1m"]) == EXIT_STALE == 6
    err = capsys.readouterr().err
    assert "runs check FAILED: SLA missed: no run succeeded in the last 1m" in err
    assert "alert sla (critical) sent to 1 of 1 channel(s)" in err
    (body,) = webhook.wait(1)
    assert body["type"] == "failure" and run.name in body["message"] and "SLA missed" in body["message"]
    assert "production 20260101T000000Z-aaaaaa is stale" in body["message"]


def test_runs_check_passes_on_a_fresh_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", started_at=now, ended_at=now)
    (tmp_path / PRODUCTION).write_text(run.name + "\n")
    assert main(["runs", "check", "--runs-dir", str(tmp_path), "--sla", "1h", "--max-production-age", "1h"]) == 0
    assert capsys.readouterr().out.startswith(f"ok: newest succeeded run {run.name}")
