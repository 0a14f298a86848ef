"""The promotion rule as a pure function of recorded outcomes, and the other pure readings of a run's outcome."""

from __future__ import annotations

import itertools

import pytest

from recsys_lab.runs.outcome import (
    PROMOTING,
    blocker,
    decide,
    error_reason,
    phases,
    refusal,
)


@pytest.mark.parametrize("status, requested, gate_passed, stopped_by, kind, reason", [
    ("succeeded", False, True, None, "not_requested", "not requested"),
    ("failed", True, None, None, "status", "the run failed: cell 3 (ZeroDivisionError): division by zero"),
    ("timed_out", True, None, "SIGALRM", "status", "the run timed_out: cell 3 (ZeroDivisionError): division by zero"),
    ("succeeded", True, True, "SIGTERM", "stopped", "stopped by SIGTERM before promotion"),
    ("succeeded", True, False, None, "gate", "gate failed: ndcg@10 = 0.1 < floor 0.2"),
    ("succeeded", True, True, None, "promote", PROMOTING),
])
def test_decide_gives_one_decision_and_the_recorded_reason(status, requested, gate_passed, stopped_by, kind, reason):
    d = decide(status, requested=requested, gate_passed=gate_passed, gate_reason="ndcg@10 = 0.1 < floor 0.2",
               run_reason="cell 3 (ZeroDivisionError): division by zero", stopped_by=stopped_by)
    assert (d.promote, d.kind, d.reason) == (kind == "promote", kind, reason)


def test_the_retrain_and_runs_promote_apply_the_same_rule():
    """The rule existed twice (execute's promotion and registry.promote's refusal); both now read blocker()."""
    for status, gate in itertools.product(("succeeded", "failed", "timed_out", "crashed", "running"),
                                          (None, {}, {"passed": True}, {"passed": False, "reason": "r"})):
        passed = None if not gate else gate["passed"]
        automatic = decide(status, requested=True, gate_passed=passed, gate_reason="r", run_reason="x")
        manual = refusal("RUN", status, gate)
        assert automatic.promote == (manual is None) == (blocker(status, passed) is None), (status, gate)
    assert refusal("RUN", "failed", None) == "run RUN is failed: refusing to promote (use --force)"
    assert refusal("RUN", "succeeded", {"passed": False, "reason": "r"}) == (
        "run RUN failed its gate (r): refusing to promote (use --force)")


def test_error_reason_is_one_line_naming_the_cell():
    assert error_reason({"exec_count": 4, "cell_index": 6, "ename": "E", "evalue": "bad\nmore"}) == "cell 4 (E): bad"
    assert error_reason({"exec_count": None, "cell_index": 6, "ename": "E", "evalue": "v"}) == "cell index 6 (E): v"
    assert error_reason({"ename": "SIGTERM", "evalue": "stopped"}) == "(SIGTERM): stopped"


def test_phases_split_compile_out_of_index_and_overhead_out_of_wall():
    got, details = phases({"fit": 2.0, "index": 1.5, "index.numba_compile": 1.0, "fit.epochs": 3}, wall=5.0)
    assert got == {"fit": 2.0, "index": 0.5, "compile": 1.0, "overhead": 1.5}
    assert details == {"index.numba_compile": 1.0, "fit.epochs": 3}


def test_the_ranking_stage_is_a_phase_not_overhead():
    """rank.enabled's stage was counted as overhead (319 s of a 491 s run on a 1 M-interaction log)."""
    got, details = phases({"evaluate": 2.0, "rank": 6.5, "save": 0.5}, wall=10.0)
    assert got == {"evaluate": 2.0, "rank": 6.5, "save": 0.5, "compile": 0.0, "overhead": 1.0}
    assert details == {}
