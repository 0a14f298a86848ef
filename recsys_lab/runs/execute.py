"""Executing a retrain: the retrain notebook run by papermill into a new run folder, gated and optionally promoted.

:func:`execute` is a recipe of named calls, each concern in its own module (papermill's ``execute_notebook`` is
the model):

0. **budget** -- :func:`budget_seconds`: the time budget checked before anything is created;
1. **lock** -- :class:`recsys_lab.runs.lock.RetrainLock`: one retrain at a time per runs directory, then
   :func:`recsys_lab.runs.registry.recover` (a killed promotion settled, stale temp files removed);
2. **start** -- :func:`start`: the run folder with a ``running`` manifest, created before papermill runs;
3. **inject** -- :func:`inject`: the parameters (``config``, ``run_dir``, ``production``) for the notebook;
4. **engine** -- :func:`run_engine`, under :class:`recsys_lab.runs.signals.StopSignals` (SIGTERM, SIGINT and the
   time budget stop the running cell; a watchdog covers a cell stuck in native code);
5. **outcome** -- :func:`recsys_lab.runs.record.record`: report, timings, gate and manifest;
6. **promote** -- :func:`recsys_lab.runs.record.promote`: the decision of :mod:`recsys_lab.runs.outcome`, carried out.

Two engines run the notebook:

- ``inprocess`` (default): papermill with :class:`recsys_lab.runs.engine.InProcessEngine`, the cells run in an IPython
  shell inside this process (no kernel, no second interpreter, no second import of the library).
- ``kernel``: papermill's own engine in a child process (:mod:`recsys_lab.runs.child`) with a fresh ``python3``
  kernel; the child dies with its parent and its stderr goes to ``executor.log`` in the run folder.

On failure the executed notebook with the failing cell stays and the status is ``failed`` (or ``timed_out``);
every save of the notebook is atomic. A stopped run is recorded (``failed`` with the signal named, or
``timed_out``) and the caller gets a :class:`RunResult` whose ``signal`` says which signal stopped it.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from recsys_lab.config import Config
from recsys_lab.errors import ConfigError, RunError, RunFailedError
from recsys_lab.evaluation.gate import GateResult
from recsys_lab.report.html import package_versions
from recsys_lab.runs.lock import RetrainLock
from recsys_lab.runs.outcome import PHASES, error_reason
from recsys_lab.runs.project import default_notebook
from recsys_lab.runs.record import failing_cell, promote, record
from recsys_lab.runs.registry import production_id, recover
from recsys_lab.runs.signals import EXIT_TIMED_OUT, MAX_BUDGET_S, STOP_GRACE_S, Stop, StopSignals
from recsys_lab.store.folder import RunFolder, git_info, utc_now

__all__ = ["PHASES", "ENGINES", "STOP_GRACE_S", "EXIT_TIMED_OUT", "RunResult", "budget_seconds",
           "start", "inject", "run_engine", "execute", "raise_for_status"]

log = logging.getLogger(__name__)

ENGINES = ("inprocess", "kernel")
"""How the notebook is executed (see the module docstring)."""


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
    signal : int or None
        The signal (SIGTERM, SIGINT) that stopped the run, if one did.
    """

    run_id: str
    run_dir: Path
    status: str
    metrics: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    reason: str | None = None
    gate: GateResult | None = None
    promoted: bool = False
    signal: int | None = None

    @property
    def report(self) -> Path:
        """The run's ``report.html``."""
        return RunFolder(self.run_dir).report


def start(config: Config, runs_dir: str | Path = "runs", *, notebook: Path | None = None,
          like: str | None = None, engine: str = "inprocess", promote_requested: bool = False) -> Path:
    """Create ``runs/<run_id>/`` with a ``running`` manifest.

    Parameters
    ----------
    config : Config
        Recorded in the manifest.
    runs_dir : str or Path
    notebook : Path, optional
        The notebook to be executed (recorded; default :func:`recsys_lab.runs.project.default_notebook`).
    like : str, optional
        Run id this one repeats.
    engine : str
        ``inprocess`` or ``kernel`` (recorded).
    promote_requested : bool
        Recorded as ``promotion.requested`` from the start.

    Returns
    -------
    Path
        The new run folder.
    """
    folder = RunFolder.create(runs_dir, {
        "status": "running", "started_at": utc_now(), "ended_at": None,
        "pid": os.getpid(), "host": socket.gethostname(), "notebook": str(notebook or default_notebook()),
        "engine": engine, "like": like,
        "git": git_info(), "packages": package_versions(), "data": None, "config": config.to_dict(redact=True),
        "timings": {}, "gate": None, "promoted": False,
        "promotion": {"requested": promote_requested, "done": False,
                      "reason": "the run has not finished" if promote_requested else "not requested"},
        "error": None, "reason": None})
    return folder.path


def budget_seconds(config: Config) -> float | None:
    """The time budget of a retrain in seconds, checked before anything is created.

    Parameters
    ----------
    config : Config
        ``config.run.max_minutes`` (0: no budget).

    Returns
    -------
    float or None
        Seconds, or None without a budget.

    Raises
    ------
    ConfigError
        ``run.max_minutes`` is negative, not finite, or longer than the timer can hold
        (:data:`recsys_lab.runs.signals.MAX_BUDGET_S`; it used to leave the run ``running``).
    """
    minutes = config.run.max_minutes
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes >= 0):
        raise ConfigError(f"expected a finite number >= 0, got {minutes!r}", parameter="run.max_minutes")
    if minutes * 60 > MAX_BUDGET_S:
        raise ConfigError(f"at most {MAX_BUDGET_S / 60:.0f} minutes (0 means no budget), got {minutes!r}",
                          parameter="run.max_minutes")
    return minutes * 60 if minutes > 0 else None


def _absolute_paths(config: Config) -> Config:
    """The notebook runs in the run folder: make data and warehouse paths absolute."""
    d = config.data
    over = {"data.warehouse": str(Path(d.warehouse).resolve())}
    for key in ("path", "interactions", "users", "items"):
        if getattr(d, key):
            over[f"data.{key}"] = str(Path(getattr(d, key)).expanduser().resolve())
    return config.replace(over)


def _declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell (papermill's own reading of it)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


def _production(runs_dir: Path, notebook: Path) -> tuple[bool, str | None]:
    """Whether the notebook declares ``production``, and production's folder (None without one).

    Raises RunError (before any run folder exists) when ``runs/PRODUCTION`` names no single run (a path, an unknown
    id, garbage)."""
    if "production" not in _declared_parameters(notebook):
        return False, None
    prod_id = production_id(runs_dir)
    return True, str(runs_dir / prod_id) if prod_id else None


def inject(config: Config, folder: RunFolder, production: tuple[bool, str | None]) -> dict:
    """The parameters injected into the notebook's ``parameters`` cell.

    Parameters
    ----------
    config : Config
        Injected as ``config`` (a dict of plain literals).
    folder : RunFolder
        Injected as ``run_dir``.
    production : tuple of (bool, str or None)
        Whether the notebook declares ``production`` (the champion and drift reference), and its folder.

    Returns
    -------
    dict
        ``config``, ``run_dir`` and, when declared, ``production`` (None without a production run).
    """
    params = {"config": config.to_dict(redact=True), "run_dir": str(folder.path)}
    declared, prod = production
    if declared:
        params["production"] = prod
    return params


def run_engine(engine: str, notebook: Path, folder: RunFolder, params: dict,
               signals: StopSignals) -> tuple[dict, Stop | None]:
    """Execute the notebook into ``folder`` with the chosen engine while stop signals are armed.

    Parameters
    ----------
    engine : {"inprocess", "kernel"}
        How the notebook runs.
    notebook : Path
        The notebook.
    folder : RunFolder
        The run folder (the executed notebook is its ``retrain.ipynb``).
    params : dict
        From :func:`inject`.
    signals : StopSignals
        Entered; armed here and disarmed once the notebook stops.

    Returns
    -------
    result : dict
        ``status`` and, unless it succeeded, the failing (or stopped) cell's ``cell_index``, ``exec_count``,
        ``ename``, ``evalue``. A cell that failed after a stop was requested is the stop (``timed_out``, or
        ``failed`` naming the signal), whatever exception the interrupted code turned it into (DuckDB raises its
        own ``Query interrupted``).
    stop : Stop or None
        The stop request that ended the execution, if one did.
    """
    from recsys_lab.runs.child import run_child  # imported before the budget is armed: a stop landing in an
    from recsys_lab.runs.engine import run_inprocess  # import's class creation escaped as a chained RuntimeError

    try:
        signals.arm()
        if engine == "inprocess":
            # what the process holds before the run (its modules above all) outlives the run: the garbage
            # collector skips it until the outcome is recorded (gc.unfreeze in execute); -0.1 s on ML-100k
            gc.freeze()
            result = run_inprocess(notebook, folder.notebook, params)
        else:
            result = run_child(notebook, folder.notebook, params, None if signals.usable else signals.budget)
        signals.disarm()
        if signals.stop is not None and result["status"] != "succeeded":  # the stop, turned into another exception
            return _stopped(result, signals.stop), signals.stop
        return result, None
    except Stop as exc:
        signals.disarm()
        return _as_stopped(exc, folder), exc
    except Exception:  # the stop landed outside a cell (an import, the engine itself) and came out as another error
        signals.disarm()
        if signals.stop is None:
            raise
        return _as_stopped(signals.stop, folder), signals.stop


def _as_stopped(stop: Stop, folder: RunFolder) -> dict:
    return {"status": stop.status, **(stop.cell or failing_cell(folder.notebook)), "ename": stop.ename,
            "evalue": stop.evalue}


def _stopped(result: dict, stop: Stop) -> dict:
    """A failed cell's result as the stop requested while it ran (its own exception kept in the value)."""
    raised = (str(result.get("evalue") or "").strip().splitlines() or [""])[0]
    return {**result, "status": stop.status, "ename": stop.ename,
            "evalue": f"{stop.evalue} (the cell raised {result.get('ename')}: {raised})"}


def _on_stuck(folder: RunFolder, promote_if_passed: bool) -> Callable[[Stop], None]:
    """What the watchdog records when the main thread is stuck in native code after a stop signal."""

    def on_stuck(stop: Stop) -> None:  # watchdog thread
        reason = f"({stop.ename}): {stop.evalue}; the process was ended after {STOP_GRACE_S:.0f} s in native code"
        try:
            recorded = folder.manifest().get("promotion")
        except RunError:
            recorded = None
        # stuck while promoting: the outcome is recorded and the pointer may have moved; the next start settles it
        if not (isinstance(recorded, dict) and "pending" in recorded):
            folder.update(status=stop.status, ended_at=utc_now(), reason=reason,
                          error={"cell_index": None, "exec_count": None, "ename": stop.ename, "evalue": stop.evalue},
                          promotion={"requested": promote_if_passed, "done": False, "reason": reason})
        print(f"run {folder.run_id} {stop.status.upper()}: {reason}", file=sys.stderr, flush=True)

    return on_stuck


def execute(config: Config, *, runs_dir: str | Path = "runs", notebook: str | Path | None = None,
            promote_if_passed: bool = False, wait: float = 0.0, like: str | None = None,
            engine: str = "inprocess") -> RunResult:
    """Run the retrain notebook with papermill into a new run folder, gate it and optionally promote it.

    Parameters
    ----------
    config : Config
        Injected into the notebook's ``parameters`` cell as ``config``. ``config.run.max_minutes`` (> 0)
        is the time budget of the notebook's execution.
    runs_dir : str or Path
        Parent of the run folders (default ``runs``).
    notebook : str or Path, optional
        The notebook (default: ``notebooks/retrain.ipynb`` of the current folder when it has one, else the one
        shipped with recsys_lab; see :func:`recsys_lab.runs.project.default_notebook`).
    promote_if_passed : bool
        Promote the run when it succeeded and passed the gate. The manifest's ``promotion`` records the
        request from the start (``requested``, ``done``, ``reason``), so a run that stopped before promoting
        says so.
    wait : float
        Seconds to wait for another retrain's lock.
    like : str, optional
        Run id this one repeats (recorded in the manifest).
    engine : {"inprocess", "kernel"}
        How the notebook runs (see the module docstring). ``inprocess`` falls back to ``kernel`` when called
        from a thread other than the main thread (signals can only be handled there).

    Returns
    -------
    RunResult
        Returned for every run that started, whatever its status (also when SIGTERM stopped it).

    Raises
    ------
    ConfigError
        ``run.max_minutes`` is not a usable budget (:func:`budget_seconds`; nothing is created).
    RunError
        Unknown engine, the notebook is missing, or ``runs/PRODUCTION`` names no single run (nothing is created).
    LockHeldError
        Another retrain holds the lock.
    RunFailedError
        The run folder could not be written (e.g. disk full) while recording the outcome.
    """
    if engine not in ENGINES:
        raise RunError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    notebook = Path(notebook).resolve() if notebook else default_notebook()
    if not notebook.is_file():
        raise RunError(f"{notebook}: notebook not found (pass --notebook)")
    budget = budget_seconds(config)
    config = _absolute_paths(config)
    runs_dir = Path(runs_dir).resolve()
    if engine == "inprocess" and threading.current_thread() is not threading.main_thread():
        log.warning("execute() called outside the main thread: using the kernel engine")
        engine = "kernel"
    with RetrainLock(runs_dir, wait=wait) as lock:
        recover(runs_dir)
        production = _production(runs_dir, notebook)
        folder = RunFolder(start(config, runs_dir, notebook=notebook, like=like, engine=engine,
                                 promote_requested=promote_if_passed))
        lock.set_run(folder.run_id)
        params = inject(config, folder, production)
        t0 = time.perf_counter()
        with StopSignals(budget, _on_stuck(folder, promote_if_passed)) as signals:
            result, stop = run_engine(engine, notebook, folder, params, signals)
            wall = time.perf_counter() - t0

            def stopped_by() -> str | None:  # a signal while the outcome is recorded still cancels the promotion
                return signals.stop.ename if signals.stop is not None else None

            try:
                outcome = record(folder, config, result, wall=wall, t0=t0, requested=promote_if_passed,
                                 stopped_by=stopped_by)
                promoted = promote(folder, outcome, stopped_by=stopped_by)
            except OSError as exc:  # e.g. disk full: say so in one line; the notebook on disk stays valid
                reason = None if result["status"] == "succeeded" else error_reason(result)
                raise RunFailedError(str(folder.path), f"{reason or result['status']}; the outcome could not be "
                                     f"recorded ({exc})", cell_index=result.get("cell_index"),
                                     ename=type(exc).__name__, evalue=str(exc)) from exc
            finally:
                signals.finished()
                gc.unfreeze()
            stop = stop or signals.stop
    return RunResult(run_id=folder.run_id, run_dir=folder.path, status=outcome.status, metrics=outcome.metrics,
                     manifest=outcome.manifest, reason=outcome.reason, gate=outcome.gate, promoted=promoted,
                     signal=stop.signum if stop is not None and not stop.timed_out else None)


def raise_for_status(result: RunResult) -> RunResult:
    """Return ``result`` when the run succeeded.

    Parameters
    ----------
    result : RunResult

    Returns
    -------
    RunResult
        ``result`` itself.

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
