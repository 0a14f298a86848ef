"""Real retrains (tiny synthetic log) in a project folder deliver their alerts to a webhook on 127.0.0.1."""

from __future__ import annotations

import json

import pytest

from recsys_lab.cli.exits import EXIT_FAILED, EXIT_GATE, EXIT_TIMEOUT
from recsys_lab.ops.alerts import ALERTS_FILE
from recsys_lab.store.folder import production_file

from ..conftest import cli
from .conftest import make_project

pytestmark = pytest.mark.slow  # a retrain each


def _only_run(project):
    (run,) = [p for p in (project / "runs").iterdir() if p.is_dir()]
    return run


def test_a_failing_nightly_run_on_a_corrupted_log_alerts_the_webhook(tmp_path, webhook):
    project = make_project(tmp_path, **{"alerts.urls": [webhook.url]})
    log = tmp_path / "log" / "interactions.parquet"
    log.write_bytes(log.read_bytes()[:2000])  # cut short: not a Parquet file any more
    proc = cli("retrain", cwd=project, timeout=600)
    assert proc.returncode == EXIT_FAILED, proc.stderr
    run = _only_run(project)
    (body,) = webhook.wait(1)
    assert body["type"] == "failure" and body["title"] == f"recsys-lab CRITICAL failed: run {run.name}"
    assert run.name in body["message"] and "cannot read interactions" in body["message"]
    assert str(run / "report.html") in body["message"] or str(run / "retrain.ipynb") in body["message"]
    (rec,) = json.loads((run / ALERTS_FILE).read_text())
    assert rec["rule"] == "failed" and rec["deliveries"][0]["delivered"] is True
    assert "alert failed (critical) sent to 1 of 1 channel(s)" in proc.stderr


def test_a_gate_refusal_alerts_with_the_failed_checks_and_the_run_is_not_promoted(tmp_path, webhook):
    project = make_project(tmp_path, **{"alerts.urls": [webhook.url], "gate.min": {"ndcg@k": 0.99}})
    proc = cli("retrain", "--promote", cwd=project, timeout=600)
    assert proc.returncode == EXIT_GATE, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("config: ./config.toml (this project's")
    run = _only_run(project)
    (body,) = webhook.wait(1)
    assert body["type"] == "warning" and run.name in body["message"]
    assert "gate refused the run, failed checks: floor ndcg@10" in body["message"]
    assert "< floor 0.99" in body["message"]
    (rec,) = json.loads((run / ALERTS_FILE).read_text())
    assert rec["rule"] == "gate" and rec["deliveries"][0]["delivered"] is True
    assert not production_file(project / "runs").exists()


def test_a_run_over_its_time_budget_alerts_timed_out(tmp_path, webhook):
    project = make_project(tmp_path, **{"alerts.urls": [webhook.url]})
    proc = cli("retrain", "--max-minutes", "0.002", cwd=project, timeout=600)  # 0.12 s: stopped in its first cells
    assert proc.returncode == EXIT_TIMEOUT, proc.stderr
    run = _only_run(project)
    (body,) = webhook.wait(1)
    assert body["title"] == f"recsys-lab CRITICAL timed_out: run {run.name}" and "timed out" in body["message"]
    assert json.loads((run / ALERTS_FILE).read_text())[0]["rule"] == "timed_out"
