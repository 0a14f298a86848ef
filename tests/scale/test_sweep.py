"""``scale.sweep`` on a local Ray (2 CPUs) and a generated log: per-epoch reports let ASHA stop a trial, the
winner is re-run as a retrain and compared with the base run, paired, with an interval."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest

from recsys_lab.errors import ConfigError
from recsys_lab.scale import sweep as sweep_module
from recsys_lab.scale.space import SweepConfig
from recsys_lab.scale.sweep import run_sweep

from ..conftest import generated_config


@pytest.mark.slow
def test_four_trials_one_stopped_early_winner_rerun(tmp_path, local_ray):
    base = generated_config(tmp_path, 300, 120, 6000, seed=1, **{
        "model.epochs": 6, "model.patience": 6, "model.no_components": 8, "eval.baselines": [],
        "ann.method": "exact", "eval.bootstrap": 200})
    # good learning rates first, then hopeless ones: ASHA (grace 1 epoch, halving) stops at least one of the latter
    space = {"model.learning_rate": ("choice", [0.1, 0.05, 0.0005, 0.0001])}
    sweep = SweepConfig(base=base, space=space, search="grid", samples=1, grace_epochs=1, top=1, max_concurrent=2)
    result = run_sweep(sweep, runs_dir=tmp_path / "runs", promote_best=True)
    t = result.trials
    assert t.height == 4 and set(t["status"]) <= {"finished", "stopped"}
    assert (t["status"] == "stopped").sum() >= 1, t
    assert t.filter(t["status"] == "stopped")["epochs"].max() < 6
    assert result.winner is not None and t["best_ndcg"].is_not_nan().all() and t["best_ndcg"].min() > 0
    assert result.winner["validation_ndcg"] == t["best_ndcg"].max()
    assert all(len(json.loads(c)) == e for c, e in zip(t["curve"], t["epochs"]))
    assert (t["seconds"] > 0).all() and 0 < result.timings["trial_work"] <= 2 * result.timings["search"]
    assert (result.folder / "trials.parquet").is_file() and (result.folder / "winner.json").is_file()
    [entry] = result.comparison
    assert entry["status"] == entry["base_status"] == "succeeded"
    vs = entry["vs_base"]
    assert vs["ci_low"] <= vs["delta"] <= vs["ci_high"] and vs["n_users"] > 0
    assert json.loads((result.folder / "comparison.json").read_text())[0]["run"] == entry["run"]
    # --promote-best: the winner's retrain went through the normal gate; production is it exactly when it passed
    from recsys_lab.runs.production import production_id

    promo = entry["promotion"]
    assert promo["requested"] and promo["gate_passed"] is not None
    assert promo["promoted"] == promo["gate_passed"] == (production_id(tmp_path / "runs") == entry["run"])
    page = (result.folder / "report.html").read_text()
    assert f"Winner: trial {result.winner['trial']}" in page and f"{vs['n_users']:,} users" in page


@pytest.mark.slow
def test_sigterm_records_what_finished(tmp_path, local_ray):
    import signal
    import threading

    base = generated_config(tmp_path, 200, 80, 3000, seed=2, **{"model.epochs": 3000, "model.patience": 3000,
                                                               "model.no_components": 4, "eval.baselines": []})
    sweep = SweepConfig(base=base, space={"model.learning_rate": ("choice", [0.05, 0.02, 0.01, 0.005])},
                        search="grid", samples=1, scheduler="none", top=1, max_concurrent=2)
    # trials of 3,000 epochs (>= 9 s each: 2 x 2 of them) are running when SIGTERM comes after 6 s
    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a late signal must not end pytest
    timer = threading.Timer(6.0, lambda: __import__("os").kill(__import__("os").getpid(), signal.SIGTERM))
    try:
        timer.start()
        result = run_sweep(sweep, runs_dir=tmp_path / "runs")
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
    assert result.signal == signal.SIGTERM and result.comparison == []
    assert result.trials.height >= 1 and (result.folder / "trials.parquet").is_file()
    assert set(result.trials["status"]) <= {"finished", "interrupted"} and "interrupted" in set(result.trials["status"])
    assert json.loads((result.folder / "sweep.json").read_text())["signal"] == signal.SIGTERM


def test_promote_best_asks_promotion_for_the_winner_only(monkeypatch, tmp_path):
    """The winner's re-run retrain (the first of the top trials) is executed with ``promote_if_passed``; the others
    and the base run are not; the outcome is recorded in the comparison."""
    import recsys_lab.runs.execute as execute_module
    import recsys_lab.runs.registry as registry_module

    calls = []

    def fake_execute(config, *, runs_dir, promote_if_passed=False, **kwargs):
        run_id = f"run{len(calls)}"
        calls.append((config.model.learning_rate, promote_if_passed))
        gate = SimpleNamespace(passed=True, reason=None)
        return SimpleNamespace(run_id=run_id, run_dir=Path(runs_dir) / run_id, status="succeeded", gate=gate,
                               promoted=promote_if_passed, reason=None)

    def fake_pairs(a, b, **kwargs):
        return pl.DataFrame({"metric": ["ndcg@10"], "a": [0.1], "b": [0.2], "delta": [0.1], "ci_low": [0.05],
                             "ci_high": [0.15], "significant": [True], "n_users": [100]})

    monkeypatch.setattr(execute_module, "execute", fake_execute)
    monkeypatch.setattr(registry_module, "paired_comparison", fake_pairs)
    sweep = SweepConfig(space={"model.learning_rate": ("choice", [0.1, 0.05])}, search="grid", samples=1, top=2)
    top = pl.DataFrame({"trial": [1, 0], "overrides": [json.dumps({"model.learning_rate": 0.05}),
                                                      json.dumps({"model.learning_rate": 0.1})]})
    out = sweep_module._rerun(sweep, top, tmp_path, promote_best=True)
    assert calls == [(sweep.base.model.learning_rate, False), (0.05, True), (0.1, False)]
    assert out[0]["promotion"] == {"requested": True, "promoted": True, "gate_passed": True, "reason": None}
    assert "promotion" not in out[1] and out[0]["vs_base"]["n_users"] == 100


def test_promote_best_without_rerun_is_a_config_error(tmp_path):
    sweep = SweepConfig(space={"model.learning_rate": ("choice", [0.1])}, search="grid", samples=1)
    with pytest.raises(ConfigError, match="--no-rerun"):
        run_sweep(sweep, runs_dir=tmp_path / "runs", rerun=False, promote_best=True)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_optuna_search_through_tune(tmp_path, local_ray):
    pytest.importorskip("optuna")
    base = generated_config(tmp_path, 200, 80, 3000, seed=3, **{"model.epochs": 2, "model.patience": 2,
                                                               "model.no_components": 4, "eval.baselines": []})
    sweep = SweepConfig(base=base, space={"model.learning_rate": ("loguniform", [0.001, 0.1]),
                                          "model.max_sampled": ("randint", [5, 10])},
                        search="optuna", samples=3, scheduler="none", top=0, seed=4, max_concurrent=2)
    result = run_sweep(sweep, runs_dir=tmp_path / "runs")
    t = result.trials
    assert t.height == 3 and set(t["status"]) == {"finished"} and t["best_ndcg"].min() > 0
    drawn = [json.loads(o) for o in t["overrides"]]
    assert all(0.001 <= d["model.learning_rate"] <= 0.1 and 5 <= d["model.max_sampled"] < 10 for d in drawn)
    assert len({d["model.learning_rate"] for d in drawn}) == 3
    assert result.winner["validation_ndcg"] == t["best_ndcg"].max() and result.comparison == []
    assert json.loads((result.folder / "sweep.json").read_text())["search"] == "optuna"
