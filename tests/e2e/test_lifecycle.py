"""Run lifecycle: registry, compare, gate, promotion, locking, SLA, crash safety, reproducibility."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import papermill as pm
import polars as pl
import pytest

from recsys_lab import serving
from recsys_lab.config import Config
from recsys_lab.errors import RunError
from recsys_lab.pipeline import Retrain
from recsys_lab.runs import execute as execution
from recsys_lab.runs import registry, retention
from recsys_lab.runs.lock import LockHeldError, RetrainLock
from recsys_lab.store.folder import read_run

from ..conftest import ROOT, cli

# -- promotion and the production pointer ----------------------------------------------------------------


def _fake_run(runs_dir: Path, run_id: str, status: str = "succeeded", gate_passed: bool = True,
              metrics: dict | None = None, pid: int | None = None) -> Path:
    d = runs_dir / run_id
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({
        "run_id": run_id, "status": status, "started_at": run_id[:15], "ended_at": None, "pid": pid or 1,
        "host": os.uname().nodename, "data": {"snapshot": "s" * 16, "hash": "h" * 64},
        "config": Config().to_dict(), "timings": {"total": 1.5}, "gate": {"passed": gate_passed, "reason": "x",
                                                                          "checks": []},
        "git": {"commit": None}, "promoted": False, "reason": None}))
    (d / "metrics.json").write_text(json.dumps(metrics or {"ndcg@10": 0.2, "recall@10": 0.1}))
    return d


def test_promote_refuses_failed_runs_unless_forced(tmp_path):
    _fake_run(tmp_path, "20260101T000000Z-aaaaaa")
    _fake_run(tmp_path, "20260102T000000Z-bbbbbb", status="failed")
    _fake_run(tmp_path, "20260103T000000Z-cccccc", gate_passed=False)
    assert registry.promote(tmp_path, "20260101") == "20260101T000000Z-aaaaaa"
    with pytest.raises(RunError, match="is failed: refusing to promote"):
        registry.promote(tmp_path, "20260102")
    with pytest.raises(RunError, match="failed its gate"):
        registry.promote(tmp_path, "20260103")
    assert registry.production_id(tmp_path) == "20260101T000000Z-aaaaaa"
    assert registry.promote(tmp_path, "20260102", force=True) == "20260102T000000Z-bbbbbb"
    with pytest.raises(RunError, match="no runs match"):
        registry.promote(tmp_path, "2027")


def test_promotion_is_atomic(tmp_path, monkeypatch):
    _fake_run(tmp_path, "20260101T000000Z-aaaaaa")
    _fake_run(tmp_path, "20260102T000000Z-bbbbbb")
    registry.promote(tmp_path, "20260101")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        registry.promote(tmp_path, "20260102")
    monkeypatch.undo()
    assert (tmp_path / "PRODUCTION").read_text() == "20260101T000000Z-aaaaaa\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_table_marks_crashed_runs_and_production(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _fake_run(tmp_path, "20260101T000000Z-aaaaaa")
    _fake_run(tmp_path, "20260102T000000Z-bbbbbb", status="running", pid=dead.pid)
    _fake_run(tmp_path, "20260103T000000Z-cccccc", status="running", pid=os.getpid())
    registry.promote(tmp_path, "20260101")
    t = registry.table(tmp_path)
    assert t["run_id"].to_list() == ["20260103T000000Z-cccccc", "20260102T000000Z-bbbbbb", "20260101T000000Z-aaaaaa"]
    assert t["status"].to_list() == ["running", "crashed", "succeeded"]
    assert t["production"].to_list() == [False, False, True]
    assert t["ndcg@k"].to_list() == [0.2, 0.2, 0.2] and t["k"].to_list() == [10, 10, 10]
    assert registry.table(tmp_path / "empty").height == 0


def test_table_reads_each_run_at_its_own_k(tmp_path):
    """`runs list` showed the @10 keys only: null for every run with another eval.k."""
    _fake_run(tmp_path, "20260101T000000Z-aaaaaa")
    _fake_run(tmp_path, "20260102T000000Z-bbbbbb",
              metrics={"eval.k": 20, "ndcg@20": 0.31, "recall@20": 0.4, "auc": 0.9, "ndcg@10": 0.25})
    t = registry.table(tmp_path)
    assert t["k"].to_list() == [20, 10]
    assert t["ndcg@k"].to_list() == [0.31, 0.2] and t["recall@k"].to_list()[0] == 0.4
    assert t["coverage@k"].to_list()[0] is None


def test_gc_keeps_production_and_live_runs(tmp_path):
    for day in range(1, 6):
        _fake_run(tmp_path, f"2026010{day}T000000Z-aaaaa{day}")
    registry.promote(tmp_path, "20260101")
    removed = retention.gc(tmp_path, keep=2)
    assert sorted(removed) == ["20260102T000000Z-aaaaa2", "20260103T000000Z-aaaaa3"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "20260101T000000Z-aaaaa1", "20260104T000000Z-aaaaa4", "20260105T000000Z-aaaaa5"]


# -- locking ---------------------------------------------------------------------------------------------


def _hold_lock(runs_dir: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from recsys_lab.runs.lock import RetrainLock
        lock = RetrainLock({str(runs_dir)!r}).acquire(run_id="holder-run")
        print("locked", flush=True)
        time.sleep({seconds})
        lock.release()
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_retrain_is_refused_naming_the_holder(tmp_path):
    holder = _hold_lock(tmp_path / "runs", 60)
    try:
        proc = cli("retrain", cwd=tmp_path)
        assert proc.returncode == 5
        assert "another retrain holds" in proc.stderr and f"pid {holder.pid}, run holder-run" in proc.stderr
        assert not [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]  # no run folder was created
    finally:
        holder.kill()
        holder.wait()


def test_wait_then_acquire_and_stale_lock_takeover(tmp_path, caplog):
    holder = _hold_lock(tmp_path, 1.0)
    with pytest.raises(LockHeldError, match="run holder-run"):
        RetrainLock(tmp_path).acquire()
    lock = RetrainLock(tmp_path, wait=30).acquire(run_id="me")  # waits for the holder to finish
    lock.release()
    holder.wait()
    killed = _hold_lock(tmp_path, 60)
    os.kill(killed.pid, signal.SIGKILL)  # leaves its holder record behind
    killed.wait()
    with caplog.at_level("WARNING"):
        lock = RetrainLock(tmp_path).acquire(run_id="me")
    assert "taking over a stale retrain lock" in caplog.text and str(killed.pid) in caplog.text
    assert lock.holder()["pid"] == os.getpid()
    lock.release()


# -- real retrains ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def second_run(first_run, workdir):
    """A rerun ``--like`` the first with a smaller model and an unreachable floor: gate fails, no promotion."""
    _, first = first_run
    proc = cli("retrain", "--like", first.name, "-p", "model.no_components", "32", "-p", "gate.min.ndcg@10", "0.99",
               "--promote", cwd=workdir)
    newest = registry.table(workdir / "runs")["run_id"][0]
    return proc, workdir / "runs" / newest


@pytest.mark.slow  # real ML-100k retrains
def test_gate_failure_exits_3_and_keeps_production(first_run, second_run, workdir):
    _, first = first_run
    proc, second = second_run
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "gate FAILED: ndcg@10 = " in proc.stderr and "< floor 0.99; " in proc.stderr
    assert registry.production_id(workdir / "runs") == first.name
    manifest = read_run(second)
    assert manifest["status"] == "succeeded" and manifest["gate"]["passed"] is False and not manifest["promoted"]
    assert manifest["promotion"]["requested"] and not manifest["promotion"]["done"]
    assert manifest["promotion"]["reason"].startswith("gate failed: ndcg@10 = ")
    html = (second / "report.html").read_text()
    assert "floor 0.99" in html  # the gate table is in the report
    # drift against production's snapshot: the same data, so every PSI is 0 and nothing is new
    m = json.loads((second / "metrics.json").read_text())
    assert m["drift.psi.item_popularity"] == pytest.approx(0.0) and m["drift.new_user_share"] == 0.0
    assert "Drift against production" in html and "item_popularity" in html


@pytest.mark.slow  # real ML-100k retrains
def test_like_reruns_with_the_same_config(first_run, second_run):
    _, first = first_run
    _, second = second_run
    a, b = read_run(first), read_run(second)
    assert b["like"] == first.name
    b["config"]["model"]["no_components"] = a["config"]["model"]["no_components"]
    assert b["config"]["gate"]["min"].pop("ndcg@10") == 0.99
    assert a["config"] == b["config"]


@pytest.mark.slow  # real ML-100k retrains
def test_runs_list_show_and_compare_cli(first_run, second_run, workdir):
    _, first = first_run
    _, second = second_run
    out = cli("runs", "list", cwd=workdir).stdout
    assert first.name in out and second.name in out and "*" in out
    rows = [json.loads(line) for line in cli("runs", "list", "--json", cwd=workdir).stdout.splitlines()]
    assert [r["run_id"] for r in rows][:2] == [second.name, first.name] and rows[1]["production"]
    assert cli("runs", "list", "--status", "failed", "--json", cwd=workdir).stdout.strip() == ""
    show = cli("runs", "show", "production", cwd=workdir).stdout
    assert f"run {first.name} (production): succeeded" in show and "gate: passed" in show and "model.npz" in show
    cmp = cli("runs", "compare", "production", second.name, cwd=workdir)
    assert cmp.returncode == 0, cmp.stderr
    assert "same snapshot" in cmp.stdout and "model.no_components" in cmp.stdout and "ndcg@10" in cmp.stdout
    c = registry.compare(workdir / "runs", first.name, second.name)
    row = c["metrics"].filter(pl.col("metric") == "ndcg@10").row(0, named=True)
    assert row["delta"] == pytest.approx(row["b"] - row["a"])
    assert set(c["params"]["parameter"]) == {"model.no_components", "gate.min.ndcg@10"}
    assert cli("runs", "show", "nope", cwd=workdir).returncode == 2


@pytest.mark.slow  # real ML-100k retrains
def test_recommend_vs_production(first_run, second_run, workdir):
    _, first = first_run
    _, second = second_run
    proc = cli("recommend", "--user", "13", "--run", second.name, "--vs", "production", cwd=workdir)
    assert proc.returncode == 0, proc.stderr
    assert "last 10 interactions" in proc.stdout and "movement" in proc.stdout
    recs = serving.compare_recommendations(workdir / "runs", 13, run=second.name, vs="production", k=10)
    assert recs["rank_a"].drop_nulls().to_list() == list(range(1, 11))
    assert recs["rank_b"].drop_nulls().sort().to_list() == list(range(1, 11))
    seen = set(serving.user_history(workdir / "runs", 13, run=second.name, n=10_000)["item_id"])
    assert not seen & set(recs["item_id"])  # never recommends what the user saw before the cut-off
    unknown = cli("recommend", "--user", "999999", cwd=workdir)  # a new user: cold-start path, said so
    assert unknown.returncode == 0 and "path: popularity" in unknown.stdout and "unknown user_id 999999" in unknown.stderr
    assert cli("recommend", "--user", "abc", cwd=workdir).returncode == 2  # not of the run's id type


@pytest.mark.slow  # real ML-100k retrains
def test_compare_models_notebook_runs_under_papermill(second_run, workdir, tmp_path):
    _, second = second_run
    out = tmp_path / "compare_models.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / "compare_models.ipynb"), str(out), kernel_name="python3",
                        parameters={"user_id": 13, "run": second.name, "vs": "production",
                                    "runs_dir": str(workdir / "runs")}, progress_bar=False, cwd=str(tmp_path))
    nb = nbformat.read(out, as_version=4)
    html = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "movement" in html and "rank_a" in html and "ndcg@10" in html


@pytest.mark.slow  # real ML-100k retrains
def test_timed_out_run_is_stopped_and_never_promoted(first_run, workdir):
    _, first = first_run
    proc = cli("retrain", "--like", first.name, "--max-minutes", "0.1", "--promote", "--engine", "kernel",
               cwd=workdir, timeout=120)
    assert proc.returncode == 4, proc.stderr[-2000:]
    assert "TIMED_OUT" in proc.stderr and "exceeded the time budget" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # no kernel / zmq tracebacks
    t = registry.table(workdir / "runs")
    newest = t.row(0, named=True)
    assert newest["status"] == "timed_out" and not newest["production"]
    assert (workdir / "runs" / newest["run_id"] / "retrain.ipynb").is_file()  # partial notebook kept
    assert registry.production_id(workdir / "runs") == first.name


@pytest.mark.slow  # real ML-100k retrains
def test_kill_9_mid_run_leaves_production_and_lists_as_crashed(first_run, workdir):
    _, first = first_run
    before = {p.name for p in (workdir / "runs").iterdir()}
    proc = subprocess.Popen([sys.executable, "-m", "recsys_lab.cli.main", "retrain", "--like", first.name, "--promote"],
                            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    new = []
    while time.monotonic() < deadline and not new:
        new = [p for p in (workdir / "runs").iterdir() if p.name not in before and (p / "retrain.ipynb").exists()]
        time.sleep(0.2)
    assert new, "the retrain never started"
    time.sleep(3)  # mid-notebook
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    row = registry.table(workdir / "runs").filter(pl.col("run_id") == new[0].name).row(0, named=True)
    assert row["status"] == "crashed"
    assert registry.production_id(workdir / "runs") == first.name
    json.loads((new[0] / "run.json").read_text())  # still a complete, readable manifest
    # the papermill executor dies with its parent (no orphan retrain keeps running)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _processes_mentioning(str(new[0])):
        time.sleep(0.2)
    assert not _processes_mentioning(str(new[0]))
    # the lock died with its holder: the next retrain may start at once
    RetrainLock(workdir / "runs").acquire().release()


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow  # real ML-100k retrains
def test_same_snapshot_config_and_seed_give_identical_metrics(first_run):
    _, first = first_run
    cfg = Config.from_dict(read_run(first)["config"]).replace({"eval.baselines": ["popularity"]})
    a = Retrain(cfg).run_all()
    b = Retrain(cfg).run_all()
    assert a == b
    saved = json.loads((first / "metrics.json").read_text())  # the notebook's run, every baseline on
    model = [k for k in a if k.split("@")[0] in ("ndcg", "precision", "recall", "map") or k in ("mrr", "auc")]
    assert model and {k: a[k] for k in model} == pytest.approx({k: saved[k] for k in model}, rel=1e-9)


def test_airflow_dag_example_runs_the_cli_outside_the_package():
    """The example lives outside the package and drives the CLI (lock, budget, gate, drift, promotion included).
    It was loaded once with Airflow's DagBag in a throwaway virtualenv (Airflow is not a dependency)."""
    assert not (ROOT / "recsys_lab" / "airflow_dag.py").exists()
    src = (ROOT / "examples" / "airflow_dag.py").read_text()
    compile(src, "airflow_dag.py", "exec")
    assert "retrain --config config.toml --promote --max-minutes 45 --wait 600" in src
    assert "PapermillOperator" not in src and "import recsys_lab" not in src


def test_corrupt_manifest_is_a_clear_error_not_a_traceback(tmp_path):
    _fake_run(tmp_path / "runs", "20260101T000000Z-aaaaaa")
    bad = tmp_path / "runs" / "20260102T000000Z-bbbbbb"
    bad.mkdir()
    (bad / "run.json").write_text('{"run_id": "20260102T000000Z-bbbbbb", "status": ')
    with pytest.raises(RunError, match="cannot read the run manifests"):
        registry.table(tmp_path / "runs")
    proc = cli("runs", "list", cwd=tmp_path)
    assert proc.returncode == 2 and "error:" in proc.stderr and "Traceback" not in proc.stderr


def test_raise_for_status_names_the_failing_cell(tmp_path):
    from recsys_lab.errors import RunFailedError

    ok = execution.RunResult(run_id="a", run_dir=tmp_path, status="succeeded")
    assert execution.raise_for_status(ok) is ok
    failed = execution.RunResult(run_id="b", run_dir=tmp_path, status="failed", reason="cell 4 (DataFileError): bad",
                            manifest={"error": {"cell_index": 6, "ename": "DataFileError", "evalue": "bad"}})
    with pytest.raises(RunFailedError, match=r"failed: cell 4 \(DataFileError\): bad") as info:
        execution.raise_for_status(failed)
    assert info.value.cell_index == 6 and info.value.ename == "DataFileError"


@pytest.mark.slow  # real ML-100k retrains
def test_identical_rerun_passes_the_paired_gate_and_unreadable_production_fails_closed(first_run, workdir, tmp_path):
    """An equivalent candidate is promoted (the gate no longer flips on noise); once production's metrics are
    gone, the next retrain fails the gate naming the file and production stays."""
    _, first = first_run
    # on a copy of the shared project: this test promotes a run and then deletes its metrics.json
    shutil.copytree(workdir, tmp_path / "project", symlinks=True)
    workdir = tmp_path / "project"
    proc = cli("retrain", "--like", first.name, "--promote", cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "promoted to production" in proc.stdout and "re-scored" not in proc.stderr
    prod = registry.production_id(workdir / "runs")
    assert prod != first.name
    gate = read_run(workdir / "runs" / prod)["gate"]
    regression = [c for c in gate["checks"] if c["kind"] == "regression"]
    assert regression and all("re-scored on this split" in c["message"] for c in regression)
    cmp = cli("runs", "compare", first.name, prod, cwd=workdir)
    assert cmp.returncode == 0 and "paired over the same" in cmp.stdout
    (workdir / "runs" / prod / "metrics.json").unlink()
    proc = cli("retrain", "--like", first.name, "--promote", cwd=workdir)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "gate FAILED" in proc.stderr and str(workdir / "runs" / prod / "metrics.json") in proc.stderr
    assert registry.production_id(workdir / "runs") == prod


def _per_user(run_dir: Path, ndcg: list[float]) -> None:
    (run_dir / "artifacts").mkdir(exist_ok=True)
    pl.DataFrame({"model": ["model"] * len(ndcg), "user_id": list(range(len(ndcg))), "ndcg@10": ndcg}).write_parquet(
        run_dir / "artifacts" / "per_user_metrics.parquet")


def test_compare_pairs_users_only_on_the_same_split(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.random(300)
    a = _fake_run(tmp_path, "20260101T000000Z-aaaaaa")
    b = _fake_run(tmp_path, "20260102T000000Z-bbbbbb")
    _per_user(a, base.tolist())
    _per_user(b, (base + 0.02).tolist())  # every user a little better: significant, though the means are close
    c = registry.compare(tmp_path, a.name, b.name)
    assert c["paired"] and c["pairing"] == "same snapshot and split"
    row = c["paired_metrics"].row(0, named=True)
    assert row["metric"] == "ndcg@10" and row["delta"] == pytest.approx(0.02) and row["significant"]
    assert row["n_users"] == 300 and row["ci_low"] == pytest.approx(0.02) == row["ci_high"]
    # another split protocol: not paired, and the reason is named
    manifest = json.loads((b / "run.json").read_text())
    manifest["config"]["split"]["method"] = "time_global"
    (b / "run.json").write_text(json.dumps(manifest))
    c = registry.compare(tmp_path, a.name, b.name)
    assert not c["paired"] and "split.method" in c["pairing"] and c["paired_metrics"] is None
    out = cli("runs", "compare", a.name, b.name, "--runs-dir", tmp_path, cwd=tmp_path).stdout
    assert "NOT paired (different split or evaluation settings (split.method))" in out
