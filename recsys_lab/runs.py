"""Runs: one folder per retrain, executed with papermill. The only module that imports papermill.

Layout of ``runs/<run_id>/``: ``run.json`` (the manifest: status, times, git commit, package versions, data
snapshot, config, phase timings, error), ``params.json``, ``metrics.json``, ``history.json``, ``data.json``,
``timings.json``, ``artifacts/``, the executed ``retrain.ipynb`` and ``report.html``.

The folder and ``run.json`` (status ``running``) exist before papermill starts; every write is atomic. A
failing cell leaves the executed notebook with its traceback, an HTML report of it, and status ``failed``.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._fs import atomic_write_json
from .config import Config
from .errors import RunError, RunFailedError
from .report import export_html, package_versions, require_thin

__all__ = ["PROJECT_ROOT", "DEFAULT_NOTEBOOK", "RunResult", "new_run_id", "git_info", "read_run", "execute"]

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTEBOOK = PROJECT_ROOT / "notebooks" / "retrain.ipynb"
PHASES = ("ingest", "features", "fit", "index", "evaluate", "save")


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


@dataclass
class RunResult:
    """Outcome of :func:`execute`.

    Attributes
    ----------
    run_id, run_dir, status : str, Path, str
        ``status`` is ``succeeded`` or ``failed``.
    metrics : dict
        ``metrics.json`` (empty if the run failed before writing it).
    manifest : dict
        ``run.json``.
    reason : str or None
        One-line failure reason.
    """

    run_id: str
    run_dir: Path
    status: str
    metrics: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    reason: str | None = None

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"


def start(config: Config, runs_dir: str | Path = "runs", *, notebook: Path = DEFAULT_NOTEBOOK) -> Path:
    """Create ``runs/<run_id>/`` with a ``running`` manifest; returns the folder."""
    run_id = new_run_id()
    run_dir = Path(runs_dir) / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    atomic_write_json(run_dir / "run.json", {
        "run_id": run_id, "status": "running", "started_at": utc_now(), "ended_at": None,
        "pid": os.getpid(), "host": socket.gethostname(), "notebook": str(notebook),
        "git": git_info(), "packages": package_versions(), "data": None, "config": config.to_dict(),
        "timings": {}, "error": None})
    return run_dir


def _absolute_paths(config: Config) -> Config:
    """The kernel may run elsewhere: make data and warehouse paths absolute."""
    d = config.data
    over = {"data.warehouse": str(Path(d.warehouse).resolve())}
    if d.path:
        over["data.path"] = str(Path(d.path).expanduser().resolve())
    return config.replace(over)


def execute(config: Config, *, runs_dir: str | Path = "runs", notebook: str | Path | None = None,
            log_output: bool = False) -> RunResult:
    """Run the retrain notebook with papermill into a new run folder and finish its manifest.

    Parameters
    ----------
    config : Config
        Injected into the notebook's ``parameters`` cell as ``config`` (a nested dict of literals).
    runs_dir : str or Path
        Parent of the run folders (default ``runs``).
    notebook : str or Path, optional
        The notebook (default ``notebooks/retrain.ipynb`` of this checkout).
    log_output : bool
        Stream the notebook's output to the log.

    Returns
    -------
    RunResult
        Always returned for a run that started; ``status == "failed"`` when a cell failed.

    Raises
    ------
    RunError
        The notebook is missing or not thin (before any folder is created).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    notebook = Path(notebook) if notebook else DEFAULT_NOTEBOOK
    if not notebook.is_file():
        raise RunError(f"{notebook}: notebook not found (pass --notebook)")
    require_thin(notebook)
    config = _absolute_paths(config)
    run_dir = start(config, runs_dir, notebook=notebook)
    out_nb = run_dir / notebook.name
    t0 = time.perf_counter()
    status, reason, error = "succeeded", None, None
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters={"config": config.to_dict(),
                                                                    "run_dir": str(run_dir.resolve())},
                            kernel_name="python3", progress_bar=False, log_output=log_output,
                            cwd=str(run_dir), request_save_on_cell_execute=True)
    except PapermillExecutionError as exc:
        status = "failed"
        reason = f"cell {exc.exec_count} ({exc.ename}): {exc.evalue}".splitlines()[0]
        error = {"cell_index": exc.cell_index, "exec_count": exc.exec_count, "ename": exc.ename,
                 "evalue": exc.evalue}
    except Exception as exc:  # kernel died, could not start, ...: still a failed, inspectable run
        status, reason = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0]
        error = {"cell_index": None, "exec_count": None, "ename": type(exc).__name__, "evalue": str(exc)}
    wall = time.perf_counter() - t0

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
    data = _read_json(run_dir / "data.json") or None
    manifest = _update(run_dir, status=status, ended_at=utc_now(), data=data, timings=phases,
                       timing_details=details, error=error, reason=reason)
    metrics = _read_json(run_dir / "metrics.json") if status == "succeeded" else {}
    return RunResult(run_id=run_dir.name, run_dir=run_dir, status=status, metrics=metrics, manifest=manifest,
                     reason=reason)


def raise_for_status(result: RunResult) -> RunResult:
    """Raise :class:`RunFailedError` for a failed run (the executed notebook stays in its folder)."""
    if result.status != "succeeded":
        err = result.manifest.get("error") or {}
        raise RunFailedError(str(result.run_dir), result.reason or "unknown", cell_index=err.get("cell_index"),
                             ename=err.get("ename"), evalue=err.get("evalue"))
    return result
