"""Executing a retrain: the retrain notebook run by papermill into a new run folder, gated and optionally promoted.

papermill runs in a child process (``python -m recsys_lab._execute``) so the time budget can stop it; the child
dies with its parent. The run folder is created (status ``running``) before papermill starts; on failure the
executed notebook with the failing cell stays and the status is ``failed`` (or ``timed_out``).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._fs import atomic_write_json
from .config import Config
from .errors import RunError, RunFailedError
from .gate import GateResult, check_gate
from .lock import RetrainLock
from .registry import production_metrics, promote
from .report import export_html, package_versions, require_thin
from .run_folder import RunFolder, git_info, read_json_optional, utc_now

__all__ = ["PROJECT_ROOT", "DEFAULT_NOTEBOOK", "PHASES", "RunResult", "start", "execute", "raise_for_status"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The checkout holding this package (editable installs)."""
DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain.ipynb"
"""The retrain notebook executed by default."""
PHASES = ("ingest", "features", "fit", "index", "evaluate", "save")
"""Work phases timed inside the notebook (seconds in ``run.json`` ``timings``)."""


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
        """The run's ``report.html``."""
        return RunFolder(self.run_dir).report


def start(config: Config, runs_dir: str | Path = "runs", *, notebook: Path = DEFAULT_NOTEBOOK,
          like: str | None = None) -> Path:
    """Create ``runs/<run_id>/`` with a ``running`` manifest.

    Returns
    -------
    Path
        The new run folder.
    """
    folder = RunFolder.create(runs_dir, {
        "status": "running", "started_at": utc_now(), "ended_at": None,
        "pid": os.getpid(), "host": socket.gethostname(), "notebook": str(notebook), "like": like,
        "git": git_info(), "packages": package_versions(), "data": None, "config": config.to_dict(),
        "timings": {}, "gate": None, "promoted": False, "error": None, "reason": None})
    return folder.path


def _absolute_paths(config: Config) -> Config:
    """The kernel runs in the run folder: make data and warehouse paths absolute."""
    d = config.data
    over = {"data.warehouse": str(Path(d.warehouse).resolve())}
    for key in ("path", "interactions", "users", "items"):
        if getattr(d, key):
            over[f"data.{key}"] = str(Path(getattr(d, key)).expanduser().resolve())
    return config.replace(over)


def _read_or_empty(path: Path, what: str) -> dict:
    """A run file the notebook wrote, {} when missing or damaged (logged): the run's outcome is still recorded."""
    try:
        return read_json_optional(path, what)
    except RunError as exc:
        log.warning("%s", exc)
        return {}


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
    result = _read_or_empty(result_file, "execution result") or {
        "status": "failed", "ename": "ChildProcessError", "cell_index": None, "exec_count": None,
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
        folder = RunFolder(run_dir)
        lock.set_run(run_dir.name)
        out_nb = folder.notebook
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
                export_html(out_nb, folder.report)
            except RunError as exc:
                log.warning("%s", exc)
        timings = _read_or_empty(folder.timings, "timings file")
        phases = {k: round(v, 4) for k, v in timings.items() if k in PHASES}
        details = {k: round(v, 4) for k, v in timings.items() if k not in PHASES}
        phases["notebook_overhead"] = round(max(wall - sum(phases.values()), 0.0), 4)
        phases["report"] = round(time.perf_counter() - t_report, 4)
        phases["total"] = round(time.perf_counter() - t0, 4)
        metrics = _read_or_empty(folder.metrics, "metrics file") if status == "succeeded" else {}
        gate = None
        if status == "succeeded":
            saved = _read_or_empty(folder.gate, "gate file")
            gate = (GateResult(passed=saved["passed"], checks=saved["checks"]) if saved else
                    check_gate(metrics, config.gate, production_metrics(runs_dir)))
        manifest = folder.update(status=status, ended_at=utc_now(),
                                 data=_read_or_empty(folder.data, "data file") or None,
                                 timings=phases, timing_details=details, error=error, reason=reason,
                                 gate=gate.to_dict() if gate else None)
        promoted = False
        if promote_if_passed and gate is not None and gate.passed:
            promote(runs_dir, run_dir.name)
            promoted = True
            manifest = folder.update(promoted=True)
    return RunResult(run_id=run_dir.name, run_dir=run_dir, status=status, metrics=metrics, manifest=manifest,
                     reason=reason, gate=gate, promoted=promoted)


def raise_for_status(result: RunResult) -> RunResult:
    """Return ``result`` when the run succeeded.

    Raises
    ------
    RunFailedError
        The run did not succeed (its executed notebook stays in the run folder); carries the failing cell.
    """
    if result.status != "succeeded":
        err = result.manifest.get("error") or {}
        raise RunFailedError(str(result.run_dir), result.reason or "unknown", cell_index=err.get("cell_index"),
                             ename=err.get("ename"), evalue=err.get("evalue"))
    return result
