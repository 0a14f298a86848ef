"""Alert rules on run folders planted by hand, delivered to a real webhook on 127.0.0.1 and recorded."""

from __future__ import annotations

import json

from recsys_lab.config import Config
from recsys_lab.ops.alerts import ALERTS_FILE, Alert, after_run, deliver, run_alerts

from ..runs.conftest import plant_run

GATE_FAILED = {"passed": False, "reason": "ndcg@10 = 0.0100 < floor 0.05", "checks": [
    {"metric": "ndcg@10", "kind": "floor", "value": 0.01, "bound": 0.05, "production": None, "passed": False,
     "message": "ndcg@10 = 0.0100 < floor 0.05"},
    {"metric": "ann.recall@10", "kind": "floor", "value": 1.0, "bound": 0.95, "production": None, "passed": True,
     "message": "ann.recall@10 = 1.0000 >= floor 0.95"}]}


def _rules(run, cfg=None):
    return [(a.rule, a.severity) for a in run_alerts(run, cfg or Config())]


def test_a_failed_run_alerts_critical_with_its_reason(tmp_path):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", status="failed", gate=None,
                    reason="cell 4 (DataFileError): log.parquet: cannot read interactions",
                    error={"ename": "DataFileError", "evalue": "x", "cell_index": 4, "exec_count": 4})
    (alert,) = run_alerts(run, Config())
    assert (alert.rule, alert.severity, alert.run_id) == ("failed", "critical", run.name)
    assert "cannot read interactions" in alert.reason and run.name in alert.message


def test_a_run_stopped_by_a_signal_or_timed_out_has_its_own_rule(tmp_path):
    stopped = plant_run(tmp_path, "20260101T000000Z-aaaaaa", status="failed", gate=None, reason="stopped",
                        error={"ename": "SIGTERM", "evalue": "the retrain was stopped by SIGTERM (signal 15)"})
    late = plant_run(tmp_path, "20260101T000001Z-bbbbbb", status="timed_out", gate=None, reason="over budget",
                     error={"ename": "TimeoutError", "evalue": "over budget"})
    assert _rules(stopped) == [("stopped", "critical")] and _rules(late) == [("timed_out", "critical")]
    assert "SIGTERM" in run_alerts(stopped, Config())[0].reason


def test_a_gate_refusal_names_the_failed_checks_from_gate_json(tmp_path):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", gate=GATE_FAILED)
    (run / "gate.json").write_text(json.dumps(GATE_FAILED))
    (alert,) = run_alerts(run, Config())
    assert (alert.rule, alert.severity) == ("gate", "warning")
    assert "floor ndcg@10" in alert.reason and "0.0100 < floor 0.05" in alert.reason
    assert "ann.recall" not in alert.reason  # only the failed checks


def test_promotion_alerts_only_when_switched_on_and_severity_is_configurable(tmp_path):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", promoted=True)
    assert _rules(run) == []
    cfg = Config().replace({"alerts.rules": ["promoted"], "alerts.severity": {"promoted": "critical"}})
    assert _rules(run, cfg) == [("promoted", "critical")]


def test_drift_above_its_bound_and_a_metric_below_its_floor(tmp_path):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", metrics={
        "eval.k": 10, "ndcg@10": 0.08, "drift.psi.item_popularity": 0.4, "drift.psi.user_activity": 0.05})
    cfg = Config().replace({"alerts.min": {"ndcg@k": 0.1, "recall@k": 0.01}})
    alerts = run_alerts(run, cfg)
    assert [a.rule for a in alerts] == ["drift", "floor"]
    assert "drift.psi.item_popularity = 0.400" in alerts[0].reason and "ndcg@10 = 0.0800" in alerts[1].reason


def test_median_rule_is_judged_with_the_interval(tmp_path):
    for i, v in enumerate([0.20, 0.21, 0.22]):
        plant_run(tmp_path, f"20260101T00000{i}Z-aaaaa{i}", promoted=True, metrics={"eval.k": 10, "ndcg@10": v})
    plant_run(tmp_path, "20260101T000005Z-cccccc", promoted=False, metrics={"eval.k": 10, "ndcg@10": 0.01})
    low = plant_run(tmp_path, "20260102T000000Z-dddddd", metrics={
        "eval.k": 10, "ndcg@10": 0.15, "ndcg@10.ci_low": 0.12, "ndcg@10.ci_high": 0.18})
    noisy = plant_run(tmp_path, "20260102T000001Z-eeeeee", metrics={
        "eval.k": 10, "ndcg@10": 0.15, "ndcg@10.ci_low": 0.05, "ndcg@10.ci_high": 0.25})
    (alert,) = run_alerts(low, Config())
    assert alert.rule == "median" and "median 0.2100 of the last 3 production run(s)" in alert.reason
    assert run_alerts(noisy, Config()) == []  # below the median, but not significantly
    (alert,) = run_alerts(low, Config().replace({"alerts.median_runs": 1}))
    assert "median 0.2200 of the last 1 production run(s)" in alert.reason


def test_after_run_delivers_to_the_webhook_and_records_alerts_json(tmp_path, webhook):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", status="failed", gate=None, reason="cell 2 (KeyError): 'x'",
                    error={"ename": "KeyError", "evalue": "'x'"})
    cfg = Config().replace({"alerts.urls": [webhook.url], "alerts.report_url": "https://ci.example.com/runs/"})
    records = after_run(run, cfg)
    (body,) = webhook.wait(1)
    assert body["path"] == "/hook" and body["type"] == "failure"
    assert run.name in body["message"] and "cell 2 (KeyError)" in body["message"]
    assert f"https://ci.example.com/runs/{run.name}/report.html" in body["message"]
    saved = json.loads((run / ALERTS_FILE).read_text())
    assert saved == records and saved[0]["rule"] == "failed"
    assert saved[0]["deliveries"] == [{"to": f"json://127.0.0.1:{webhook.port}/hook", "delivered": True,
                                       "error": None}]


def test_a_failed_delivery_is_recorded_and_never_raised(tmp_path, webhook):
    run = plant_run(tmp_path, "20260101T000000Z-aaaaaa", gate=GATE_FAILED)
    webhook.close()  # nobody listens on the port any more
    cfg = Config().replace({"alerts.urls": [webhook.url], "alerts.command": "echo broken >&2; exit 3"})
    (rec,) = after_run(run, cfg)
    (url, cmd) = rec["deliveries"]
    assert url["delivered"] is False and url["error"]
    assert cmd == {"to": "command", "delivered": False, "error": "exit 3: broken"}
    assert json.loads((run / ALERTS_FILE).read_text())[0]["deliveries"][0]["delivered"] is False


def test_the_command_gets_the_alert_on_stdin_and_in_the_environment(tmp_path):
    out = tmp_path / "got.txt"
    command = f'cat > {out}.json; echo "$RECSYS_ALERT_RULE $RECSYS_ALERT_RUN_ID" > {out}'
    cfg = Config().replace({"alerts.command": command})
    (rec,) = deliver([Alert("sla", "critical", "R1", "SLA missed", None)], cfg)
    assert rec["deliveries"] == [{"to": "command", "delivered": True, "error": None}]
    assert out.read_text().split() == ["sla", "R1"]
    assert json.loads((tmp_path / "got.txt.json").read_text())["reason"] == "SLA missed"


def test_after_run_never_raises_on_a_folder_without_manifest(tmp_path):
    (tmp_path / "x").mkdir()
    assert after_run(tmp_path / "x", Config()) == []


def test_a_url_held_in_the_environment_is_used_and_stays_out_of_the_config(tmp_path, webhook, monkeypatch):
    monkeypatch.setenv("RECSYS_TEST_HOOK", webhook.url)
    cfg = Config().replace({"alerts.urls": ["$RECSYS_TEST_HOOK", "${RECSYS_TEST_UNSET}"]})
    assert webhook.url not in json.dumps(cfg.to_dict())
    monkeypatch.delenv("RECSYS_TEST_UNSET", raising=False)
    (rec,) = deliver([Alert("failed", "critical", "R1", "boom", None)], cfg)
    sent, unset = rec["deliveries"]
    assert sent == {"to": f"$RECSYS_TEST_HOOK (json://127.0.0.1:{webhook.port}/hook)", "delivered": True,
                    "error": None}
    assert unset == {"to": "${RECSYS_TEST_UNSET}", "delivered": False,
                     "error": "environment variable RECSYS_TEST_UNSET is not set"}
    assert "R1" in webhook.wait(1)[0]["message"]
