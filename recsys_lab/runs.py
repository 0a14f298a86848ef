"""Runs: one folder per retrain, the registry over those folders, the metric gate, promotion and locking.

Layout of ``runs/<run_id>/``: ``run.json`` (the manifest: status, times, pid, git commit, package versions,
data snapshot, config, phase timings, gate outcome, error), ``params.json``, ``metrics.json``,
``history.json``, ``data.json``, ``gate.json``, ``timings.json``, ``artifacts/``, the executed
``retrain.ipynb`` and ``report.html``. ``runs/PRODUCTION`` holds the production run id; it is replaced
atomically and only by :func:`promote`.

There is no server: the folders are the registry, queried with DuckDB (:func:`table`). Status is one of
``running``, ``succeeded``, ``failed``, ``timed_out``, and ``crashed`` (a ``running`` manifest whose owner
process is gone, e.g. after ``kill -9``). papermill runs in a child process (``recsys_lab._execute``) so the
time budget can stop it; a file lock (``runs/.retrain.lock``, ``flock``) keeps retrains one at a time and is
released by the OS when its holder dies, so a stale lock is taken over without manual cleanup.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from ._fs import atomic_write_json, atomic_write_text
from .config import Config
from .errors import RecsysLabError, RunError, RunFailedError
from .evaluation import top_k
from .gate import GateResult, check_gate
from .report import export_html, package_versions, require_thin

__all__ = ["PROJECT_ROOT", "DEFAULT_NOTEBOOK", "STATUSES", "RunResult", "RetrainLock", "LockHeldError",
           "new_run_id", "git_info", "read_run", "execute", "table", "resolve", "production_id",
           "production_metrics", "production_snapshot", "promote", "compare", "gc", "recommend", "compare_recommendations",
           "user_history", "raise_for_status"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain.ipynb"
PHASES = ("ingest", "features", "fit", "index", "evaluate", "save")
STATUSES = ("running", "succeeded", "failed", "timed_out", "crashed")
PRODUCTION = "PRODUCTION"
LOCK = ".retrain.lock"
KEY_METRICS = ("ndcg@10", "recall@10", "auc", "coverage@10", "ann.recall@10")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time, unique by a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def git_info(root: str | Path = PROJECT_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}`` of the checkout holding the code."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout
        return {"commit": sha, "dirty": bool(status.strip()) if sha else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """The manifest ``run.json`` of a run folder.

    Raises
    ------
    RunError
        No manifest, or it is not valid JSON.
    """
    path = Path(run_dir) / "run.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: no run manifest (not a run folder?)") from None
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: not valid JSON ({exc})") from exc


def _update(run_dir: Path, **changes: Any) -> dict[str, Any]:
    manifest = read_run(run_dir)
    manifest.update(changes)
    atomic_write_json(run_dir / "run.json", manifest)
    return manifest


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- locking ---------------------------------------------------------------------------------------------
class LockHeldError(RunError):
    """Another retrain holds the runs directory's lock.

    Attributes
    ----------
    holder : dict
        ``pid``, ``run_id``, ``since``, ``host`` of the holder (as far as it wrote them).
    """

    def __init__(self, path: Path, holder: dict, waited: float) -> None:
        self.holder = holder
        who = (f"pid {holder.get('pid')}, run {holder.get('run_id')}, since {holder.get('since')}"
               if holder else "unknown holder")
        super().__init__(f"another retrain holds {path} ({who}); waited {waited:.0f} s "
                         "(use --wait SECONDS to wait longer)")


class RetrainLock:
    """Exclusive, process-wide lock on a runs directory (``flock`` on ``runs/.retrain.lock``).

    The OS releases the lock when its holder exits or is killed, so a lock left by ``kill -9`` is stale by
    construction and the next retrain takes it over (logging the previous holder).

    Parameters
    ----------
    runs_dir : str or Path
    wait : float
        Seconds to wait for the lock (default 0: fail at once).

    Raises
    ------
    LockHeldError
        The lock is still held after ``wait`` seconds; the message names the holder.
    """

    def __init__(self, runs_dir: str | Path, *, wait: float = 0.0) -> None:
        self.path = Path(runs_dir) / LOCK
        self.wait = wait
        self._fh = None

    def holder(self) -> dict:
        return _read_json(self.path)

    def acquire(self, run_id: str | None = None) -> "RetrainLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        deadline = time.monotonic() + self.wait
        t0 = time.monotonic()
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    fh.close()
                    raise LockHeldError(self.path, self.holder(), time.monotonic() - t0) from None
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
        previous = self.holder()
        if previous and not _pid_alive(previous.get("pid")):
            log.warning("taking over a stale retrain lock left by pid %s (run %s)", previous.get("pid"),
                        previous.get("run_id"))
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "run_id": run_id, "since": utc_now(),
                             "host": socket.gethostname()}))
        fh.flush()
        self._fh = fh
        return self

    def set_run(self, run_id: str) -> None:
        """Record the run id of the holder (once the run folder exists)."""
        if self._fh:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.write(json.dumps({"pid": os.getpid(), "run_id": run_id, "since": utc_now(),
                                       "host": socket.gethostname()}))
            self._fh.flush()

    def release(self) -> None:
        if self._fh:
            self._fh.seek(0)
            self._fh.truncate()
            self._fh.flush()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "RetrainLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- executing a retrain ---------------------------------------------------------------------------------
@dataclass
class RunResult:
    """Outcome of :func:`execute`.

    Attributes
    ----------
    run_id : str
    run_dir : Path
    status : str
        ``succeeded``, ``failed`` or ``timed_out``.
    metrics : dict
        ``metrics.json`` (empty if the run did not finish).
    manifest : dict
        ``run.json``.
    reason : str or None
        One-line failure reason.
    gate : GateResult or None
        The metric gate's outcome (None when the run did not succeed).
    promoted : bool
    """

    run_id: str
    run_dir: Path
    status: str
    metrics: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    reason: str | None = None
    gate: GateResult | None = None
    promoted: bool = False

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def start(config: Config, runs_dir: str | Path = "runs", *, notebook: Path = DEFAULT_NOTEBOOK,
          like: str | None = None) -> Path:
    """Create ``runs/<run_id>/`` with a ``running`` manifest; returns the folder."""
    run_id = new_run_id()
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_json(run_dir / "run.json", {
        "run_id": run_id, "status": "running", "started_at": utc_now(), "ended_at": None,
        "pid": os.getpid(), "host": socket.gethostname(), "notebook": str(notebook), "like": like,
        "git": git_info(), "packages": package_versions(), "data": None, "config": config.to_dict(),
        "timings": {}, "gate": None, "promoted": False, "error": None, "reason": None})
    return run_dir


def _absolute_paths(config: Config) -> Config:
    """The kernel runs in the run folder: make data and warehouse paths absolute."""
    d = config.data
    over = {"data.warehouse": str(Path(d.warehouse).resolve())}
    for key in ("path", "interactions", "users", "items"):
        if getattr(d, key):
            over[f"data.{key}"] = str(Path(getattr(d, key)).expanduser().resolve())
    return config.replace(over)


def _run_child(notebook: Path, out_nb: Path, params: dict, budget: float | None) -> dict:
    """Execute the notebook in a child process; returns its result dict (status timed_out on budget)."""
    run_dir = out_nb.parent
    params_file, result_file = run_dir / ".params.json", run_dir / ".execution.json"
    atomic_write_json(params_file, params)
    proc = subprocess.Popen([sys.executable, "-m", "recsys_lab._execute", str(notebook), str(out_nb),
                             str(params_file), str(result_file)], start_new_session=True)
    try:
        proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGINT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        return {"status": "timed_out", "ename": "TimeoutError", "cell_index": None, "exec_count": None,
                "evalue": f"exceeded the time budget of {budget / 60:.2f} min"}
    result = _read_json(result_file) or {"status": "failed", "ename": "ChildProcessError", "cell_index": None,
                                         "exec_count": None,
                                         "evalue": f"executor exited with code {proc.returncode}"}
    params_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    return result


def execute(config: Config, *, runs_dir: str | Path = "runs", notebook: str | Path | None = None,
            promote_if_passed: bool = False, wait: float = 0.0, like: str | None = None) -> RunResult:
    """Run the retrain notebook with papermill into a new run folder, gate it and optionally promote it.

    Parameters
    ----------
    config : Config
        Injected into the notebook's ``parameters`` cell as ``config``. ``config.run.max_minutes`` (> 0)
        is the time budget.
    runs_dir : str or Path
        Parent of the run folders (default ``runs``).
    notebook : str or Path, optional
        The notebook (default ``notebooks/retrain.ipynb`` of this checkout).
    promote_if_passed : bool
        Promote the run when it succeeded and passed the gate.
    wait : float
        Seconds to wait for another retrain's lock.
    like : str, optional
        Run id this one repeats (recorded in the manifest).

    Returns
    -------
    RunResult
        Returned for every run that started, whatever its status.

    Raises
    ------
    RunError
        The notebook is missing or not thin (nothing is created).
    LockHeldError
        Another retrain holds the lock.
    """
    notebook = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    if not notebook.is_file():
        raise RunError(f"{notebook}: notebook not found (pass --notebook)")
    require_thin(notebook)
    config = _absolute_paths(config)
    runs_dir = Path(runs_dir)
    with RetrainLock(runs_dir, wait=wait) as lock:
        run_dir = start(config, runs_dir, notebook=notebook, like=like)
        lock.set_run(run_dir.name)
        out_nb = run_dir / notebook.name
        t0 = time.perf_counter()
        budget = config.run.max_minutes * 60 if config.run.max_minutes > 0 else None
        result = _run_child(notebook, out_nb, {"config": config.to_dict(), "run_dir": str(run_dir.resolve())},
                            budget)
        wall = time.perf_counter() - t0
        status = result["status"]
        error = None if status == "succeeded" else {k: result.get(k) for k in ("cell_index", "exec_count", "ename",
                                                                                "evalue")}
        reason = None
        if error:
            where = f"cell {error['exec_count']} " if error.get("exec_count") is not None else ""
            reason = f"{where}({error['ename']}): {error['evalue']}".strip().splitlines()[0]

        t_report = time.perf_counter()
        if out_nb.is_file():
            try:
                export_html(out_nb, run_dir / "report.html")
            except RunError as exc:
                log.warning("%s", exc)
        timings = _read_json(run_dir / "timings.json")
        phases = {k: round(v, 4) for k, v in timings.items() if k in PHASES}
        details = {k: round(v, 4) for k, v in timings.items() if k not in PHASES}
        phases["notebook_overhead"] = round(max(wall - sum(phases.values()), 0.0), 4)
        phases["report"] = round(time.perf_counter() - t_report, 4)
        phases["total"] = round(time.perf_counter() - t0, 4)
        metrics = _read_json(run_dir / "metrics.json") if status == "succeeded" else {}
        gate = None
        if status == "succeeded":
            saved = _read_json(run_dir / "gate.json")
            gate = (GateResult(passed=saved["passed"], checks=saved["checks"]) if saved else
                    check_gate(metrics, config.gate, production_metrics(runs_dir)))
        manifest = _update(run_dir, status=status, ended_at=utc_now(), data=_read_json(run_dir / "data.json") or None,
                           timings=phases, timing_details=details, error=error, reason=reason,
                           gate=gate.to_dict() if gate else None)
        promoted = False
        if promote_if_passed and gate is not None and gate.passed:
            promote(runs_dir, run_dir.name)
            promoted = True
            manifest = _update(run_dir, promoted=True)
    return RunResult(run_id=run_dir.name, run_dir=run_dir, status=status, metrics=metrics, manifest=manifest,
                     reason=reason, gate=gate, promoted=promoted)


def raise_for_status(result: RunResult) -> RunResult:
    """Raise :class:`RunFailedError` for a run that did not succeed (its executed notebook stays)."""
    if result.status != "succeeded":
        err = result.manifest.get("error") or {}
        raise RunFailedError(str(result.run_dir), result.reason or "unknown", cell_index=err.get("cell_index"),
                             ename=err.get("ename"), evalue=err.get("evalue"))
    return result


# -- registry --------------------------------------------------------------------------------------------
def production_id(runs_dir: str | Path = "runs") -> str | None:
    """The production run id (``runs/PRODUCTION``), or None."""
    p = Path(runs_dir) / PRODUCTION
    return p.read_text().strip() or None if p.is_file() else None


def production_metrics(run_dir_or_runs_dir: str | Path | None = None) -> dict[str, float]:
    """Production's ``metrics.json`` ({} if there is no production run).

    Parameters
    ----------
    run_dir_or_runs_dir : str or Path, optional
        A run folder (its parent is the runs directory) or the runs directory; default ``runs``.
    """
    p = Path(run_dir_or_runs_dir or "runs")
    runs_dir = p.parent if (p / "run.json").is_file() else p
    pid = production_id(runs_dir)
    return _read_json(runs_dir / pid / "metrics.json") if pid else {}


def production_snapshot(run_dir_or_runs_dir: str | Path | None = None):  # -> Snapshot | None
    """The warehouse snapshot production was trained on (the drift reference), or None.

    Returns None when there is no production run or its snapshot file is gone (drift is then not computed).
    """
    from .warehouse import open_snapshot

    p = Path(run_dir_or_runs_dir or "runs")
    runs_dir = p.parent if (p / "run.json").is_file() else p
    pid = production_id(runs_dir)
    if not pid:
        return None
    manifest = _read_json(runs_dir / pid / "run.json")
    snap = (manifest.get("data") or {}).get("snapshot")
    warehouse = ((manifest.get("config") or {}).get("data") or {}).get("warehouse")
    if not snap or not warehouse:
        return None
    try:
        return open_snapshot(snap, warehouse)
    except RecsysLabError:
        log.warning("production's snapshot %s is gone from %s: no drift reference", snap, warehouse)
        return None


def _effective_status(status: str, pid: int | None, host: str | None) -> str:
    if status == "running" and host == socket.gethostname() and not _pid_alive(pid):
        return "crashed"
    return status


def table(runs_dir: str | Path = "runs") -> pl.DataFrame:
    """All runs, newest first, as a Polars frame (a DuckDB query over ``runs/*/run.json`` and metrics).

    Returns
    -------
    pl.DataFrame
        ``run_id, status, started_at, ended_at, duration_s, snapshot, production (bool), gate_passed,
        promoted, reason`` and one Float64 column per key metric (``ndcg@10``, ``recall@10``, ``auc``,
        ``coverage@10``, ``ann.recall@10``; null when absent). ``status`` is ``crashed`` for a ``running``
        run whose process is gone.

    Raises
    ------
    RunError
        A ``run.json`` cannot be read (e.g. hand-edited into invalid JSON); the message says why.
    """
    runs_dir = Path(runs_dir)
    schema = {"run_id": pl.Utf8, "status": pl.Utf8, "started_at": pl.Utf8, "ended_at": pl.Utf8,
              "duration_s": pl.Float64, "snapshot": pl.Utf8, "production": pl.Boolean, "gate_passed": pl.Boolean,
              "promoted": pl.Boolean, "reason": pl.Utf8, **{m: pl.Float64 for m in KEY_METRICS}}
    if not any(runs_dir.glob("*/run.json")):
        return pl.DataFrame(schema=schema)
    metric_cols = ", ".join(f"TRY_CAST(json_extract(m.content, '$.\"{k}\"') AS DOUBLE) AS \"{k}\"" for k in KEY_METRICS)
    glob = str(runs_dir / "*" / "run.json").replace("'", "''")
    mglob = str(runs_dir / "*" / "metrics.json").replace("'", "''")
    has_metrics = any(runs_dir.glob("*/metrics.json"))
    metrics_src = (f"(SELECT regexp_extract(filename, '([^/]+)/metrics.json$', 1) AS run_id, content "
                   f"FROM read_text('{mglob}'))" if has_metrics else "(SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS content)")
    query = f"""
        WITH r AS (
            SELECT * FROM read_json('{glob}', format='auto', union_by_name=true, columns={{
                run_id: 'VARCHAR', status: 'VARCHAR', started_at: 'VARCHAR', ended_at: 'VARCHAR', pid: 'BIGINT',
                host: 'VARCHAR', data: 'JSON', timings: 'JSON', gate: 'JSON', promoted: 'BOOLEAN', reason: 'VARCHAR'}})
        )
        SELECT r.run_id, r.status, r.started_at, r.ended_at,
               TRY_CAST(json_extract(r.timings, '$.total') AS DOUBLE) AS duration_s,
               json_extract_string(r.data, '$.snapshot') AS snapshot,
               TRY_CAST(json_extract(r.gate, '$.passed') AS BOOLEAN) AS gate_passed,
               coalesce(r.promoted, false) AS promoted, r.reason, r.pid, r.host, {metric_cols}
        FROM r LEFT JOIN {metrics_src} m ON m.run_id = r.run_id
        ORDER BY r.started_at DESC, r.run_id DESC
    """
    try:
        with duckdb.connect() as con:
            df = con.sql(query).pl()
    except duckdb.Error as exc:  # a hand-edited or foreign run.json: name it instead of a raw traceback
        raise RunError(f"{runs_dir}: cannot read the run manifests ({str(exc).splitlines()[0]})") from exc
    prod = production_id(runs_dir)
    status = [_effective_status(s, p, h) for s, p, h in zip(df["status"], df["pid"], df["host"])]
    df = df.with_columns(pl.Series("status", status, pl.Utf8), (pl.col("run_id") == pl.lit(prod)).alias("production"))
    return df.select(list(schema)).cast(schema)


def resolve(runs_dir: str | Path, ref: str) -> Path:
    """A run folder from a reference: ``production``, ``latest`` (newest succeeded), a run id or a unique prefix.

    Raises
    ------
    RunError
        No such run, an ambiguous prefix, or no production run.
    """
    runs_dir = Path(runs_dir)
    if ref == "production":
        pid = production_id(runs_dir)
        if not pid:
            raise RunError(f"{runs_dir}: no production run yet (promote one with `recsys-lab runs promote ID`)")
        ref = pid
    elif ref == "latest":
        t = table(runs_dir).filter(pl.col("status") == "succeeded")
        if t.height == 0:
            raise RunError(f"{runs_dir}: no succeeded run")
        ref = t["run_id"][0]
    hits = [p for p in runs_dir.glob(f"{ref}*") if (p / "run.json").is_file()]
    exact = [p for p in hits if p.name == ref]
    if exact:
        return exact[0]
    if len(hits) != 1:
        raise RunError(f"{runs_dir}: {'no' if not hits else str(len(hits))} runs match {ref!r}")
    return hits[0]


def promote(runs_dir: str | Path, ref: str, *, force: bool = False) -> str:
    """Make a run production by replacing ``runs/PRODUCTION`` atomically.

    Parameters
    ----------
    runs_dir : str or Path
    ref : str
        Run reference (see :func:`resolve`).
    force : bool
        Promote even a run that did not succeed or failed its gate.

    Returns
    -------
    str
        The promoted run id.

    Raises
    ------
    RunError
        Unknown run, or a run that did not succeed / failed its gate without ``force``.
    """
    run_dir = resolve(runs_dir, ref)
    manifest = read_run(run_dir)
    status = _effective_status(manifest.get("status"), manifest.get("pid"), manifest.get("host"))
    if not force:
        if status != "succeeded":
            raise RunError(f"run {run_dir.name} is {status}: refusing to promote (use --force)")
        if manifest.get("gate") and not manifest["gate"].get("passed", True):
            raise RunError(f"run {run_dir.name} failed its gate ({manifest['gate'].get('reason')}): "
                           "refusing to promote (use --force)")
    atomic_write_text(Path(runs_dir) / PRODUCTION, run_dir.name + "\n")
    log.info("promoted %s", run_dir.name)
    return run_dir.name


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def compare(runs_dir: str | Path, a: str, b: str) -> dict[str, Any]:
    """Metric deltas, parameter differences and data difference between runs ``a`` and ``b``.

    Returns
    -------
    dict
        ``a``, ``b`` (run ids); ``metrics``: pl.DataFrame ``metric, a, b, delta (b - a), relative
        (delta / |a|)``; ``params``: pl.DataFrame ``parameter, a, b`` of differing config values (paths
        excluded); ``same_data``: bool; ``snapshots``: (a, b).
    """
    da, db = resolve(runs_dir, a), resolve(runs_dir, b)
    ma, mb = _read_json(da / "metrics.json"), _read_json(db / "metrics.json")
    keys = list(ma) + [k for k in mb if k not in ma]
    num = [k for k in keys if isinstance(ma.get(k), (int, float)) or isinstance(mb.get(k), (int, float))]
    va = [ma.get(k) for k in num]
    vb = [mb.get(k) for k in num]
    metrics = pl.DataFrame({"metric": num, "a": va, "b": vb}, schema={"metric": pl.Utf8, "a": pl.Float64,
                                                                        "b": pl.Float64})
    metrics = metrics.with_columns((pl.col("b") - pl.col("a")).alias("delta"))
    metrics = metrics.with_columns(pl.when(pl.col("a").abs() > 0).then(pl.col("delta") / pl.col("a").abs())
                                   .otherwise(None).alias("relative"))
    ra, rb = read_run(da), read_run(db)
    fa, fb = _flatten(ra.get("config", {})), _flatten(rb.get("config", {}))
    diff = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k) and k not in ("data.warehouse",)]
    params = pl.DataFrame({"parameter": diff, "a": [json.dumps(fa.get(k)) for k in diff],
                           "b": [json.dumps(fb.get(k)) for k in diff]}, schema={"parameter": pl.Utf8, "a": pl.Utf8,
                                                                                  "b": pl.Utf8})
    sa, sb = (ra.get("data") or {}).get("hash"), (rb.get("data") or {}).get("hash")
    return {"a": da.name, "b": db.name, "metrics": metrics, "params": params, "same_data": sa == sb and sa is not None,
            "snapshots": ((ra.get("data") or {}).get("snapshot"), (rb.get("data") or {}).get("snapshot"))}


def gc(runs_dir: str | Path, keep: int, *, dry_run: bool = False) -> list[str]:
    """Remove all but the ``keep`` newest runs, never the production run nor a live ``running`` one.

    Returns
    -------
    list of str
        Removed (or, with ``dry_run``, removable) run ids.
    """
    if keep < 0:
        raise RunError(f"--keep must be >= 0, got {keep}")
    t = table(runs_dir)
    candidates = t.slice(keep).filter(~pl.col("production") & (pl.col("status") != "running"))
    removed = candidates["run_id"].to_list()
    if not dry_run:
        for run_id in removed:
            shutil.rmtree(Path(runs_dir) / run_id)
    return removed


# -- recommendations from a run's artifacts ----------------------------------------------------------------
@dataclass
class _RunModel:
    run_id: str
    user_ids: np.ndarray
    item_ids: np.ndarray
    user_vecs: np.ndarray
    item_vecs: np.ndarray
    snapshot_path: Path
    cutoff: str


_CACHE: dict[Path, _RunModel] = {}


def _load_run_model(run_dir: Path) -> _RunModel:
    if run_dir in _CACHE:
        return _CACHE[run_dir]
    art = run_dir / "artifacts"
    if not (art / "embeddings.npz").is_file():
        raise RunError(f"run {run_dir.name} has no artifacts/embeddings.npz (did it succeed?)")
    ids, emb = np.load(art / "id_maps.npz"), np.load(art / "embeddings.npz")
    manifest = read_run(run_dir)
    data = manifest.get("data") or {}
    wh = Path(manifest["config"]["data"]["warehouse"])
    model = _RunModel(run_id=run_dir.name, user_ids=ids["user_ids"], item_ids=ids["item_ids"],
                      user_vecs=emb["user_vecs"], item_vecs=emb["item_vecs"],
                      snapshot_path=wh / "snapshots" / f"{data.get('snapshot')}.duckdb",
                      cutoff=(data.get("split") or {}).get("cutoff"))
    _CACHE[run_dir] = model
    return model


def _user_key(m: _RunModel, user_id: int | str) -> int | str:
    """The user id in the run's id type (integer or text)."""
    if m.user_ids.dtype.kind in "iu":
        try:
            return int(user_id)
        except (TypeError, ValueError):
            raise RunError(f"run {m.run_id}: user ids are integers, got {user_id!r}") from None
    return str(user_id)


def _snapshot_sql(path: Path, query: str, params: list) -> pl.DataFrame:
    if not path.is_file():
        raise RunError(f"{path}: the run's data snapshot is gone from the warehouse")
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(query, params=params).pl()


def user_history(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", n: int = 10) -> pl.DataFrame:
    """The user's last ``n`` interactions before the run's training cut-off: ``ts, item_id, title, weight``."""
    m = _load_run_model(resolve(runs_dir, run))
    user_id = _user_key(m, user_id)
    return _snapshot_sql(m.snapshot_path,
                         "SELECT i.ts, i.item_id, it.title, i.weight FROM interactions i JOIN items it USING (item_id) "
                         "WHERE i.user_id = ? AND i.ts < ?::TIMESTAMPTZ ORDER BY i.ts DESC LIMIT ?",
                         [user_id, m.cutoff, int(n)])


def recommend(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", k: int = 10) -> pl.DataFrame:
    """Top-k items for one user from a run's folded embeddings (exact), items seen before its cut-off excluded.

    Returns
    -------
    pl.DataFrame
        ``rank (1-based), item_id, title, score`` with k rows.

    Raises
    ------
    RunError
        Unknown run or user, or missing artifacts.
    """
    m = _load_run_model(resolve(runs_dir, run))
    user_id = _user_key(m, user_id)
    hit = np.flatnonzero(m.user_ids == user_id)
    if len(hit) == 0:
        raise RunError(f"run {m.run_id}: unknown user_id {user_id!r}")
    seen = _snapshot_sql(m.snapshot_path, "SELECT DISTINCT item_id FROM interactions WHERE user_id = ? "
                         "AND ts < ?::TIMESTAMPTZ", [user_id, m.cutoff])["item_id"].to_numpy()
    import scipy.sparse as sp

    cols = np.searchsorted(m.item_ids, seen)
    exclude = sp.csr_matrix((np.ones(len(cols), np.float32), (np.zeros(len(cols), int), cols)),
                            shape=(1, len(m.item_ids)))
    items, scores = top_k(m.user_vecs[hit], m.item_vecs, k, exclude=exclude)
    ids = m.item_ids[items[0]]
    titles = _snapshot_sql(m.snapshot_path, "SELECT item_id, title FROM items WHERE item_id IN (SELECT unnest(?))",
                           [ids.tolist()])
    out = pl.DataFrame({"rank": np.arange(1, len(ids) + 1), "item_id": ids, "score": scores[0]})
    return out.join(titles, on="item_id", how="left").select("rank", "item_id", "title", "score")


def compare_recommendations(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", vs: str = "production",
                            k: int = 10) -> pl.DataFrame:
    """Two runs' top-k for one user side by side with rank changes.

    Returns
    -------
    pl.DataFrame
        One row per item in either list: ``rank_a, rank_b, movement, item_id, title, score_a, score_b``
        (``a`` is ``run``, ``b`` is ``vs``; a rank is null when the item is not in that top-k).
        ``movement`` says how the item moved from ``vs`` to ``run``: ``up N``, ``down N``, ``=``, ``new``
        (only in ``run``) or ``dropped`` (only in ``vs``). Sorted by ``rank_a`` then ``rank_b``.
    """
    ra, rb = recommend(runs_dir, user_id, run=run, k=k), recommend(runs_dir, user_id, run=vs, k=k)
    titles = pl.concat([ra.select("item_id", "title"), rb.select("item_id", "title")]).unique("item_id")
    both = (ra.drop("title").rename({"rank": "rank_a", "score": "score_a"})
            .join(rb.drop("title").rename({"rank": "rank_b", "score": "score_b"}), on="item_id", how="full",
                  coalesce=True)
            .join(titles, on="item_id", how="left"))
    movement = (pl.when(pl.col("rank_b").is_null()).then(pl.lit("new"))
                .when(pl.col("rank_a").is_null()).then(pl.lit("dropped"))
                .when(pl.col("rank_a") < pl.col("rank_b")).then(pl.format("up {}", pl.col("rank_b") - pl.col("rank_a")))
                .when(pl.col("rank_a") > pl.col("rank_b")).then(pl.format("down {}", pl.col("rank_a") - pl.col("rank_b")))
                .otherwise(pl.lit("=")))
    return (both.with_columns(movement.alias("movement"))
            .sort(["rank_a", "rank_b"], nulls_last=True)
            .select("rank_a", "rank_b", "movement", "item_id", "title", "score_a", "score_b"))
