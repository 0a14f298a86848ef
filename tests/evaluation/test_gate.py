"""The metric gate on hand-made comparisons: floors, paired champion/challenger, baselines, fail closed, @k."""

import pytest

from recsys_lab.config import GateConfig
from recsys_lab.errors import ConfigError
from recsys_lab.evaluation.gate import NO_PRODUCTION, GateResult, check_gate


def _diff(delta, lo, hi, prod=0.2, n=800):
    return {"delta": delta, "ci_low": lo, "ci_high": hi, "significant": lo > 0 or hi < 0, "relative": delta / prod,
            "n_users": n, "production": prod, "value": prod + delta}


BASE = {"ndcg@10": 0.2, "recall@10": 0.1, "vs.popularity.ndcg@10": 0.05, "vs.popularity.ndcg@10.ci_low": 0.03,
        "vs.popularity.ndcg@10.ci_high": 0.07}


def test_floor_failure_names_metric_value_and_bound():
    g = check_gate(BASE, GateConfig(min={"ndcg@10": 0.5}, max_regression={}, not_worse_than=()))
    assert not g.passed and g.reason == "ndcg@10 = 0.2000 < floor 0.5"
    g = check_gate({}, GateConfig(min={"auc": 0.5}, max_regression={}, not_worse_than=()))
    assert not g.passed and "auc missing" in g.reason and g.table().height == 1


def test_noise_does_not_fail_the_regression_check():
    """-15 % but not significant (the interval straddles 0): identical retrains no longer flip the gate."""
    cfg = GateConfig(min={}, max_regression={"ndcg@k": 0.10}, not_worse_than=())
    g = check_gate(BASE, cfg, production={"ndcg@10": _diff(-0.03, -0.06, 0.001)}, production_error=None)
    assert g.passed and "no significant difference; within max regression 10%" in g.checks[0]["message"]
    g = check_gate(BASE, cfg, production={"ndcg@10": _diff(-0.03, -0.05, -0.01)}, production_error=None)
    assert not g.passed and "production significantly better; exceeds max regression 10%" in g.reason
    # significantly worse but within tolerance: passes
    g = check_gate(BASE, cfg, production={"ndcg@10": _diff(-0.01, -0.015, -0.005)}, production_error=None)
    assert g.passed


def test_no_production_is_said_and_unreadable_production_fails_closed():
    cfg = GateConfig(min={}, max_regression={"ndcg@k": 0.10}, not_worse_than=())
    g = check_gate(BASE, cfg)  # default: no production run
    assert g.passed and g.checks[0]["message"] == "ndcg@10: skipped: no production run"
    assert check_gate(BASE, cfg, production_error=NO_PRODUCTION).passed
    g = check_gate(BASE, cfg, production_error="cannot read /runs/x/metrics.json (FileNotFoundError)")
    assert not g.passed and "/runs/x/metrics.json" in g.reason
    g = check_gate(BASE, cfg, production={}, production_error=None)  # comparison missing: fail closed
    assert not g.passed and "no paired comparison" in g.reason


def test_model_significantly_worse_than_popularity_fails():
    cfg = GateConfig(min={}, max_regression={})
    assert check_gate(BASE, cfg).passed
    worse = {**BASE, "vs.popularity.ndcg@10": -0.01, "vs.popularity.ndcg@10.ci_low": -0.02,
             "vs.popularity.ndcg@10.ci_high": -0.001}
    g = check_gate(worse, cfg)
    assert not g.passed and "vs baseline popularity" in g.reason and "significantly worse" in g.reason
    g = check_gate({"ndcg@10": 0.2}, cfg)  # the baseline did not run: fail closed, say how to fix
    assert not g.passed and "baseline popularity was not evaluated" in g.reason


def test_metric_names_follow_eval_k():
    m = {"ndcg@20": 0.3, "ann.recall@20": 0.99, "vs.popularity.ndcg@20": 0.1, "vs.popularity.ndcg@20.ci_low": 0.05,
         "vs.popularity.ndcg@20.ci_high": 0.15}
    g = check_gate(m, GateConfig(), k=20)
    assert g.passed, g.reason
    assert {c["metric"] for c in g.checks} == {"ndcg@20", "ann.recall@20", "recall@20"}
    assert GateResult.from_dict(g.to_dict()) == g


def test_an_undefined_interval_fails_closed_with_its_reason():
    """A one-user log passed a -53 % regression: the interval over one user is NaN and `NaN < 0` is False."""
    nan = float("nan")
    cfg = GateConfig(min={}, max_regression={"ndcg@k": 0.10}, not_worse_than=())
    g = check_gate(BASE, cfg, production={"ndcg@10": _diff(-0.106, nan, nan, n=1)}, production_error=None)
    assert not g.passed
    assert g.reason == ("ndcg@10 = 0.0940 vs production 0.2000: the paired 95% interval is undefined (1 users): too "
                        "few users to tell, so the gate fails closed")
    g = check_gate({**BASE, "vs.popularity.ndcg@10.ci_low": nan, "vs.popularity.ndcg@10.ci_high": nan},
                   GateConfig(min={}, max_regression={}, not_worse_than=("popularity",)))
    assert not g.passed and "the paired 95% interval is undefined" in g.reason


def test_not_worse_than_best_single_names_the_strongest_baseline():
    metrics = {"eval.k": 10, "ndcg@10": 0.30,
               "baseline.popularity.ndcg@10": 0.10, "vs.popularity.ndcg@10": 0.20,
               "vs.popularity.ndcg@10.ci_low": 0.18, "vs.popularity.ndcg@10.ci_high": 0.22,
               "baseline.ease.ndcg@10": 0.33, "vs.ease.ndcg@10": -0.03,
               "vs.ease.ndcg@10.ci_low": -0.05, "vs.ease.ndcg@10.ci_high": -0.01}
    g = check_gate(metrics, GateConfig(min={}, max_regression={}, not_worse_than=("best_single",)))
    assert not g.passed and "best_single (ease)" in g.reason and "significantly worse" in g.reason
    metrics["vs.ease.ndcg@10.ci_high"] = 0.01
    assert check_gate(metrics, GateConfig(min={}, max_regression={}, not_worse_than=("best_single",))).passed
    g = check_gate({"eval.k": 10}, GateConfig(min={}, max_regression={}, not_worse_than=("best_single",)))
    assert not g.passed and "no baseline was evaluated" in g.reason
    with pytest.raises(ConfigError, match="best_single"):
        GateConfig(not_worse_than=("best",))


def test_the_ann_recall_floor_is_skipped_only_when_no_index_was_built():
    """ann.recall@10 = 1.0 was printed and gated when no index was built (exact vs exact): now the run records
    ann.exact = 1 and the floor says it was skipped; a missing recall with an index still fails closed."""
    cfg = GateConfig(min={"ann.recall@k": 0.95}, max_regression={}, not_worse_than=())
    g = check_gate({**BASE, "ann.exact": 1}, cfg)
    assert g.passed and g.checks[0]["message"] == "ann.recall@10: skipped: exact search, no index was built"
    assert not check_gate(BASE, cfg).passed


def test_serving_the_blend_adds_a_floor_on_blend_vs_model_that_fails_closed():
    from recsys_lab.evaluation.gate import for_serving

    gate = GateConfig(min={}, max_regression={}, not_worse_than=())
    assert for_serving(gate, "model") is gate and check_gate(BASE, for_serving(gate, "model"), k=10).passed
    blend = for_serving(gate, "blend")
    key = "blend.vs.model.ndcg@10.ci_low"
    missing = check_gate(BASE, blend, k=10)
    assert not missing.passed and missing.reason == f"{key} missing from metrics (floor 0.0)"
    assert not check_gate({**BASE, key: float("nan")}, blend, k=10).passed
    assert check_gate({**BASE, key: -0.001}, blend, k=10).reason == f"{key} = -0.0010 < floor 0.0"
    assert check_gate({**BASE, key: 0.0}, blend, k=10).passed
    # a floor the configuration sets itself (at @k or at @10) wins over the default
    for own in ("blend.vs.model.ndcg@k.ci_low", key):
        g = check_gate({**BASE, key: -0.001}, for_serving(GateConfig(min={own: -0.01}, max_regression={},
                                                                         not_worse_than=()), "blend"), k=10)
        assert g.passed and [c["bound"] for c in g.checks] == [-0.01]
