"""The verdict card: promoted or not and why in one sentence, then the model against production and the best
baseline in words with the paired interval, the evaluation, the gate, the data checks and the duration vs the SLA."""

from __future__ import annotations

import pytest

from recsys_lab.config import Config
from recsys_lab.report.verdict import Verdict, format_duration, significance

RUN = "20261203T083300Z-6cefe3"
REASON = ("ndcg@10: production is significantly better (paired 95% interval [-0.041, -0.012] below 0) and the "
          "relative drop 12.5 % exceeds max_regression 10 %")
METRICS = {"eval.k": 10, "eval.n_users": 943, "ndcg@10": 0.2342, "ndcg@10.ci_low": 0.2101, "ndcg@10.ci_high": 0.2563,
           "recall@10": 0.3658, "recall@10.ci_low": 0.3401, "recall@10.ci_high": 0.3902,
           "baseline.popularity.ndcg@10": 0.1200, "baseline.ease.ndcg@10": 0.2300,
           "vs.popularity.ndcg@10": 0.1142, "vs.popularity.ndcg@10.ci_low": 0.1, "vs.popularity.ndcg@10.ci_high": 0.13,
           "vs.ease.ndcg@10": 0.0042, "vs.ease.ndcg@10.ci_low": -0.01, "vs.ease.ndcg@10.ci_high": 0.018,
           "production.ndcg@10": 0.2601, "vs.production.ndcg@10": -0.0259, "vs.production.ndcg@10.ci_low": -0.041,
           "vs.production.ndcg@10.ci_high": -0.012, "drift.psi.item_popularity": 0.01}
DATA = {"split": {"method": "time_per_user"}, "validation": {"null_keys": 0, "duplicates": 0, "empty": 0},
        "warnings": []}
PASSED = {"passed": True, "reason": None, "checks": [{"passed": True}, {"passed": True}, {"passed": True}]}


def _verdict(status="succeeded", *, gate=PASSED, promotion=None, metrics=METRICS, data=DATA, reason=None,
             duration=312.0, config=None) -> Verdict:
    return Verdict.from_run(RUN, status, config=config or Config(), reason=reason, gate=gate,
                            promotion=promotion or {"requested": True, "done": True, "reason": None},
                            metrics=metrics, data=data, duration_s=duration)


def test_significance_only_when_the_interval_excludes_zero():
    assert significance(0.01, 0.03) == "significantly better"
    assert significance(-0.03, -0.01) == "significantly worse"
    assert significance(-0.01, 0.03) == "not significantly different"
    assert significance(None, 0.03) == "not significantly different"


@pytest.mark.parametrize("kwargs, sentence", [
    ({}, f"Promoted: run {RUN} passed all 3 gate checks and became production."),
    ({"promotion": {"requested": False, "done": False, "reason": "not requested"}},
     f"Not promoted: run {RUN} passed all 3 gate checks; promotion was not requested (retrain without --promote)."),
    ({"gate": {"passed": False, "reason": REASON, "checks": [{"passed": False}]},
      "promotion": {"requested": True, "done": False, "reason": "gate failed: ..."}},
     f"Not promoted: run {RUN} failed its gate: {REASON}."),
    ({"status": "failed", "gate": None, "reason": "cell 5 (DataValidationError): empty", "metrics": {},
      "promotion": {"requested": True, "done": False, "reason": "the run failed: ..."}},
     f"Not promoted: run {RUN} failed: cell 5 (DataValidationError): empty."),
    ({"status": "timed_out", "gate": None, "reason": "budget of 1 min exceeded", "metrics": {}},
     f"Not promoted: run {RUN} timed out: budget of 1 min exceeded."),
    ({"promotion": {"requested": True, "done": False, "reason": "stopped by SIGTERM before promotion"}},
     f"Not promoted: run {RUN} passed all 3 gate checks but was stopped by SIGTERM before promotion."),
    ({"promotion": {"requested": True, "done": False, "reason": "gate passed; promoting"}},
     f"Promoting: run {RUN} passed all 3 gate checks; it becomes production once the promotion is recorded in "
     "run.json."),
])
def test_the_sentence_says_whether_the_run_was_promoted_and_why(kwargs, sentence):
    status = kwargs.pop("status", "succeeded")
    assert _verdict(status, **kwargs).sentence() == sentence


def test_facts_put_the_model_against_production_and_the_best_baseline_in_words():
    facts = dict(_verdict().facts())
    assert facts["Against production"] == ("NDCG@10 0.234 against production's 0.260: significantly worse (-0.026, "
                                           "95% interval [-0.041, -0.012], paired over the same users).")
    assert facts["Best baseline"] == ("NDCG@10 0.234 against ease's 0.230: not significantly different (+0.004, "
                                      "95% interval [-0.010, +0.018], paired over the same users).")
    assert facts["Evaluation"] == ("943 users, time_per_user split; NDCG@10 0.234 [0.210, 0.256]; recall@10 0.366 "
                                   "[0.340, 0.390] (95% intervals over users).")
    assert facts["Gate"] == "passed (3 checks)."
    assert facts["Data checks"].startswith("all 3 passed")
    assert facts["Duration"] == "Took 5 min 12 s, within the SLA of 26 h (alerts.sla)."


def test_without_production_or_with_findings_the_facts_say_so():
    metrics = {k: v for k, v in METRICS.items() if "production" not in k and not k.startswith("drift.")}
    data = {**DATA, "validation": {"null_keys": 0, "duplicates": 1200}, "warnings": ["too few users"]}
    config = Config().replace({"run.max_minutes": 5})
    facts = _verdict(metrics=metrics, data=data, config=config).facts()
    got = dict(facts)
    assert got["Against production"] == "No production run yet: nothing to compare with."
    assert got["Data checks"] == "1 of 2 passed; found: duplicates (1,200 rows) (warn-level: the run went on)."
    assert ("Warning", "too few users") in facts
    assert got["Duration"] == "Took 5 min 12 s, OVER the SLA of 5 min (run.max_minutes)."


def test_a_failed_run_has_no_metric_lines():
    labels = [label for label, _ in _verdict("failed", gate=None, metrics={}, data=None, reason="x").facts()]
    assert labels == ["Data checks", "Duration"]


def test_the_card_is_escaped_and_has_no_local_path():
    card = _verdict("failed", gate=None, metrics={}, reason="cannot read /home/me/data/u.data: <bad>").html()
    assert card.startswith('<section class="rl-verdict rl-refused" id="verdict"><p class="rl-sentence">Not promoted')
    assert "/home/me" not in card and "u.data: &lt;bad&gt;" in card


def test_format_duration():
    assert [format_duration(s) for s in (4.26, 312, 7800, 93600)] == ["4.3 s", "5 min 12 s", "2 h 10 min", "26 h"]
