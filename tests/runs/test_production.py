"""The production pointer on planted run folders: a full run id checked on read and write, and a promotion that a
kill never leaves disagreeing with ``run.json`` (the intent first, settled at the next start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from recsys_lab.cli.main import main
from recsys_lab.errors import RunError
from recsys_lab.evaluation.gate import GateResult
from recsys_lab.runs import production, registry, retention
from recsys_lab.store.folder import RunFolder

from .conftest import plant_run

A, B = "20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"


class Killed(BaseException):
    """Stands for a kill -9 at a point of the promotion (nothing after it runs)."""


@pytest.fixture()
def runs(tmp_path):
    r = tmp_path / "runs"
    plant_run(r, A)
    plant_run(r, B, promotion={"requested": True, "done": False, "reason": "gate passed; promoting"})
    return r


def _manifest(runs, run_id):
    return json.loads((runs / run_id / "run.json").read_text())


# -- PRODUCTION holds a full run id, checked on read and write --------------------------------------------------

def test_promote_by_prefix_writes_the_full_id_and_records_it_in_run_json(runs):
    assert registry.promote(runs, "20260102") == B
    assert (runs / "PRODUCTION").read_text() == B + "\n"
    m = _manifest(runs, B)
    assert m["promoted"] is True
    assert m["promotion"] == {"requested": True, "done": True, "reason": None, "by": "hand", "forced": None}


def test_an_old_prefix_pointer_resolves_on_read_and_is_rewritten_in_full_on_the_next_promote(runs):
    (runs / "PRODUCTION").write_text("20260101\n")  # as older versions wrote it
    assert production.production_id(runs) == A
    assert registry.resolve(runs, "production").name == A
    assert retention.gc(runs, keep=0) == [B]  # production by its prefix is kept
    plant_run(runs, B)
    registry.promote(runs, A)
    assert (runs / "PRODUCTION").read_text() == A + "\n"


@pytest.mark.parametrize("content", [b"../victim\n", b"/etc\n", b"..\n", b"20991231T000000Z-zzzzzz\n", b"2026010\n",
                                     b"\xff\xfe\x00garbage", b"2026\nrm -rf /\n"])
def test_a_bad_pointer_is_a_typed_error_naming_the_file_and_serving_and_gc_refuse(runs, content, capsys):
    (runs / "PRODUCTION").write_bytes(content)
    for read in (lambda: production.production_id(runs), lambda: registry.resolve(runs, "production"),
                 lambda: retention.gc(runs, keep=0)):
        with pytest.raises(RunError, match="PRODUCTION: ") as err:
            read()
        assert str(runs / "PRODUCTION") in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == [A, B]  # gc removed nothing
    for args in (["recommend", "--items", "1,2", "--run", "production"], ["runs", "gc", "--keep", "0"]):
        assert main([*args, "--runs-dir", str(runs)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "PRODUCTION" in err[0], err
    # the listing still works (it is how one finds the run to promote), and promoting replaces the pointer
    assert registry.table(runs)["production"].to_list() == [False, False]
    assert registry.promote(runs, A) == A and production.production_id(runs) == A


def test_the_pointer_is_only_written_for_a_run_folder_directly_under_runs(runs, tmp_path):
    outside = plant_run(tmp_path / "elsewhere", "20250101T000000Z-cccccc")
    (runs / outside.name).symlink_to(outside, target_is_directory=True)
    for run_id in ("../elsewhere/20250101T000000Z-cccccc", "20991231T000000Z-zzzzzz", outside.name):
        with pytest.raises(RunError):
            production.point(runs, run_id)
    assert not (runs / "PRODUCTION").exists()


# -- the promotion is recorded with the pointer: intent first, settled at the next start ---------------------------

def _kill_before_the_pointer_moves(monkeypatch):
    def killed(runs_dir, run_id):
        raise Killed()

    monkeypatch.setattr(production, "_write_pointer", killed)


def _kill_after_the_pointer_moved(monkeypatch):
    real = production._write_pointer

    def killed(runs_dir, run_id):
        real(runs_dir, run_id)
        raise Killed()

    monkeypatch.setattr(production, "_write_pointer", killed)


def test_a_kill_after_the_pointer_moved_is_recorded_done_at_the_next_start(runs, monkeypatch, caplog):
    registry.promote(runs, A)
    _kill_after_the_pointer_moved(monkeypatch)
    with pytest.raises(Killed):
        registry.promote(runs, B)
    monkeypatch.undo()
    assert production.production_id(runs) == B
    pending = _manifest(runs, B)["promotion"]["pending"]
    assert pending["previous"] == A and pending["pid"] == os.getpid() and _manifest(runs, B)["promoted"] is False
    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0  # the next start settles it
    m = _manifest(runs, B)
    assert m["promoted"] is True and m["promotion"] == {"requested": True, "done": True, "reason": None}
    assert "recorded done" in caplog.text


def test_a_kill_before_the_pointer_moved_is_recorded_not_done_with_the_reason(runs, monkeypatch):
    registry.promote(runs, A)
    _kill_before_the_pointer_moves(monkeypatch)
    with pytest.raises(Killed):
        registry.promote(runs, B)
    monkeypatch.undo()
    assert production.production_id(runs) == A and "pending" in _manifest(runs, B)["promotion"]
    assert production.reconcile(runs) == [B]
    m = _manifest(runs, B)
    assert m["promoted"] is False and "pending" not in m["promotion"] and m["promotion"]["done"] is False
    assert m["promotion"]["reason"].startswith(f"promotion interrupted (process {os.getpid()} ended at ")
    assert m["promotion"]["reason"].endswith(f"before PRODUCTION moved; production stayed {A}")
    assert production.reconcile(runs) == []  # settled once


def test_runs_show_settles_and_shows_an_interrupted_promotion(runs, monkeypatch, capsys):
    _kill_before_the_pointer_moves(monkeypatch)
    with pytest.raises(Killed):
        registry.promote(runs, B)
    monkeypatch.undo()
    assert main(["runs", "show", B, "--runs-dir", str(runs)]) == 0
    assert "promotion: not done (promotion interrupted (process " in capsys.readouterr().out
    assert not (runs / "PRODUCTION").exists()


def test_a_retrain_killed_while_promoting_is_settled_by_the_next_promote(runs, monkeypatch):
    """The retrain's own promotion (record.promote) goes through the same intent; here `runs promote` of another
    run is the next start: it settles the first (pointer moved) before moving the pointer on."""
    from recsys_lab.runs.record import Outcome, promote

    folder = RunFolder(runs / B)
    outcome = Outcome(status="succeeded", error=None, reason=None, requested=True,
                      gate=GateResult(passed=True, checks=[]), manifest=folder.manifest())
    _kill_after_the_pointer_moved(monkeypatch)
    with pytest.raises(Killed):
        promote(folder, outcome, stopped_by=lambda: None)
    monkeypatch.undo()
    assert _manifest(runs, B)["promoted"] is False  # disagrees with PRODUCTION until the next start
    registry.promote(runs, A)
    assert _manifest(runs, B)["promoted"] is True and _manifest(runs, B)["promotion"]["done"] is True
    assert _manifest(runs, A)["promoted"] is True and production.production_id(runs) == A


def test_an_intent_whose_process_is_alive_is_left_alone(runs):
    """A concurrent `runs list` must not settle a promotion another process is carrying out."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        m = _manifest(runs, B)
        m["promotion"]["pending"] = {"previous": None, "pid": sleeper.pid, "host": os.uname().nodename,
                                     "since": "2026-01-02T00:00:00+00:00"}
        (runs / B / "run.json").write_text(json.dumps(m))
        assert production.reconcile(runs) == []
        assert "pending" in _manifest(runs, B)["promotion"]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert production.reconcile(runs) == [B]
