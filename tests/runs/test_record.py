"""Recording an executed notebook's outcome and carrying out the promotion decision, on planted run folders."""

from __future__ import annotations

import json

import pytest

from recsys_lab.config import Config
from recsys_lab.runs.record import Outcome, promote, record
from recsys_lab.store.folder import RunFolder

from .conftest import plant_run


@pytest.fixture()
def folder(tmp_path):
    d = plant_run(tmp_path / "runs", "20260101T000000Z-aaaaaa", status="running", gate=None,
                  promotion={"requested": True, "done": False, "reason": "the run has not finished"})
    (d / "metrics.json").unlink()
    return RunFolder(d)


def _record(folder, gate_passed, stopped_by=lambda: None):
    (folder.path / "metrics.json").write_text(json.dumps({"ndcg@10": 0.3}))
    if gate_passed is not None:
        folder.gate.write_text(json.dumps({"passed": gate_passed, "checks": [] if gate_passed else [
            {"metric": "ndcg@10", "kind": "floor", "value": 0.3, "bound": 0.9, "production": None, "passed": False,
             "message": "ndcg@10 = 0.3 < floor 0.9"}]}))
    return record(folder, Config(), {"status": "succeeded"}, wall=1.0, t0=0.0, requested=True, stopped_by=stopped_by)


def test_a_passed_gate_is_promoted_and_recorded_done(folder):
    outcome = _record(folder, True)
    assert outcome.manifest["promotion"] == {"requested": True, "done": False, "reason": "gate passed; promoting"}
    assert promote(folder, outcome, stopped_by=lambda: None)
    assert (folder.runs_dir / "PRODUCTION").read_text().strip() == folder.run_id
    assert folder.manifest()["promotion"] == {"requested": True, "done": True, "reason": None}
    assert folder.manifest()["promoted"] is True and folder.manifest()["status"] == "succeeded"


def test_a_signal_while_recording_cancels_the_promotion(folder):
    """The decision is taken again right before promoting (it used to compare the recorded message)."""
    outcome = _record(folder, True)
    assert not promote(folder, outcome, stopped_by=lambda: "SIGTERM")
    assert not (folder.runs_dir / "PRODUCTION").exists()
    assert folder.manifest()["promotion"] == {"requested": True, "done": False,
                                              "reason": "stopped by SIGTERM before promotion"}


@pytest.mark.parametrize("gate_passed, reason", [
    (False, "gate failed: ndcg@10 = 0.3 < floor 0.9"),
    (None, "gate failed: {gate} missing: the notebook did not record its gate"),
])
def test_a_failed_or_missing_gate_is_not_promoted(folder, gate_passed, reason):
    outcome = _record(folder, gate_passed)
    assert not promote(folder, outcome, stopped_by=lambda: None)
    assert not (folder.runs_dir / "PRODUCTION").exists()
    assert folder.manifest()["promotion"]["reason"] == reason.format(gate=folder.gate)
    assert isinstance(outcome, Outcome) and outcome.gate is not None and not outcome.gate.passed
