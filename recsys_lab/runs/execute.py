"""Executing a retrain: the retrain notebook run by papermill into a new run folder, gated and optionally promoted.

Two engines run the notebook:

- ``inprocess`` (default): papermill with :class:`recsys_lab.runs.engine.InProcessEngine`, the cells run in an IPython
  shell inside this process (no kernel, no second interpreter, no second import of the library).
- ``kernel``: papermill's own engine in a child process (``python -m recsys_lab.runs.child``) with a fresh
  ``python3`` kernel; the child dies with its parent and its stderr goes to ``executor.log`` in the run folder.

The run folder is created (status ``running``) before papermill starts; on failure the executed notebook with the
failing cell stays and the status is ``failed`` (or ``timed_out``). Every save of the notebook is atomic.

Stopping. While the notebook runs, SIGTERM and SIGINT (and SIGALRM at the time budget) raise a stop request inside
the running cell; the run is then recorded (``failed`` with the signal named, or ``timed_out``), and the caller
gets a :class:`RunResult` whose ``signal`` says which signal stopped it. A watchdog thread covers a cell stuck in a
native call that never returns to Python: :data:`STOP_GRACE_S` seconds after the signal it records the run and
ends the process (exit code ``128 + signal``, or 4 for the budget).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config
from recsys_lab.errors import RunError, RunFailedError
from recsys_lab.evaluation.gate import GateResult
from recsys_lab.report.html import export_html, package_versions, verdict_markdown
from recsys_lab.runs.lock import RetrainLock
from recsys_lab.runs.project import default_notebook
from recsys_lab.runs.registry import production_id, promote
from recsys_lab.store.folder import RunFolder, git_info, read_json_optional, utc_now

__all__ = ["PHASES", "ENGINES", "STOP_GRACE_S", "EXIT_TIMED_OUT", "RunResult",
           "start", "execute", "raise_for_status"]

log = logging.getLogger(__name__)

PHASES = ("ingest", "features", "fit", "index", "evaluate", "save")
"""Work phases timed inside the notebook (seconds in ``run.json`` ``timings``); ``index`` excludes ``compile``."""
ENGINES = ("inprocess", "kernel")
"""How the notebook is executed (see the module docstring)."""
STOP_GRACE_S = 15.0
"""Seconds a stopped run has to record itself before the watchdog ends the process."""
EXIT_TIMED_OUT = 4
"""Exit status of a process the watchdog ends after the time budget."""


class _Stop(BaseException):
    """Raised in the main thread by a stop signal (not an ``Exception``: library code must not swallow it)."""

    def __init__(self, signum: int, budget: float | None = None) -> None:
        self.signum = signum
        self.cell: dict | None = None  # the running cell, when known before the notebook is touched again
        self.timed_out = signum == signal.SIGALRM
        if self.timed_out:
            self.ename = "TimeoutError"
            self.evalue = f"exceeded the time budget of {(budget or 0) / 60:.2f} min"
        else:
            self.ename = signal.Signals(signum).name
            self.evalue = f"the retrain was stopped by {self.ename} (signal {signum})"
        super().__init__(self.evalue)

    @property
    def status(self) -> str:
        return "timed_out" if self.timed_out else "failed"

    @property
    def exit_code(self) -> int:
        return EXIT_TIMED_OUT if self.timed_out else 128 + self.signum


class _StopSignals:
    """While armed, SIGTERM / SIGINT / the budget's SIGALRM raise :class:`_Stop` in the main thread (once).

    A watchdog thread learns of each signal through ``signal.set_wakeup_fd`` (written by the C-level handler, so
    it works even while the main thread is stuck in a native call); if the main thread has not called
    :meth:`finished` ``grace`` seconds later, the watchdog calls ``on_stuck(stop)`` and ends the process.
    Usable only from the main thread (``usable`` is False elsewhere: nothing is installed).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)

    def __init__(self, budget: float | None, on_stuck: Callable[[_Stop], None], grace: float = STOP_GRACE_S) -> None:
        self.budget, self.on_stuck, self.grace = budget, on_stuck, grace
        self.usable = threading.current_thread() is threading.main_thread()
        self.armed = False
        self.stop: _Stop | None = None
        self._done = threading.Event()
        self._saved: dict[int, Any] = {}
        self._old_fd = -1
        self._socks: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.stop is not None:
            return  # already stopping: the first signal decides
        self.stop = _Stop(signum, self.budget)
        if self.armed:
            self.armed = False
            raise self.stop

    def _watch(self, reader: socket.socket) -> None:
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            if not data:
                return
            signum = data[-1]
            if signum not in self.SIGNALS or self._done.is_set():
                continue
            if self._done.wait(self.grace):
                return
            stop = self.stop or _Stop(signum, self.budget)
            try:
                self.on_stuck(stop)
            finally:
                os._exit(stop.exit_code)

    def __enter__(self) -> "_StopSignals":
        if not self.usable:
            return self
        for sig in self.SIGNALS:
            self._saved[sig] = signal.signal(sig, self._handler)
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        self._socks = (reader, writer)
        self._old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, args=(reader,), name="recsys-lab-stop-watchdog",
                                        daemon=True)
        self._thread.start()
        return self

    def arm(self) -> None:
        """From now on a signal raises in the main thread; starts the budget's timer."""
        if self.stop is not None:  # a signal came before the notebook started
            raise self.stop
        self.armed = True
        if self.usable and self.budget:
            signal.setitimer(signal.ITIMER_REAL, self.budget)

    def disarm(self) -> None:
        """Signals are only recorded from now on (the run is being written down)."""
        self.armed = False
        if self.usable:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def finished(self) -> None:
        """The run is recorded: the watchdog stands down."""
        self._done.set()

    def __exit__(self, *exc: object) -> None:
        self.disarm()
        self.finished()
        if not self.usable:
            return
        signal.set_wakeup_fd(self._old_fd)
        for sig, old in self._saved.items():
            signal.signal(sig, old)
        if self._socks:
            for s in self._socks:
                s.close()


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
        "git": git_info(), "packages": package_versions(), "data": None, "config": config.to_dict(),
        "timings": {}, "gate": None, "promoted": False,
        "promotion": {"requested": promote_requested, "done": False,
                      "reason": "the run has not finished" if promote_requested else "not requested"},
        "error": None, "reason": None})
    return folder.path


def _absolute_paths(config: Config) -> Config:
    """The notebook runs in the run folder: make data and warehouse paths absolute."""
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


def _failing_cell(nb_path: Path) -> dict:
    """``cell_index`` and ``exec_count`` of the cell marked failed (or still running) in a saved notebook."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - no notebook, or an unreadable one: no cell to name
        return {"cell_index": None, "exec_count": None}
    for index, cell in enumerate(nb.cells):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("failed", "running"):
            return {"cell_index": index, "exec_count": cell.get("execution_count")}
    return {"cell_index": None, "exec_count": None}


def _run_inprocess(notebook: Path, out_nb: Path, params: dict) -> dict:
    """Execute the notebook in this process (papermill + InProcessEngine); returns the result dict."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from recsys_lab.runs import engine as _engine

    _engine.register()
    try:
        pm.execute_notebook(str(notebook), str(out_nb), parameters=params, engine_name=_engine.ENGINE_NAME,
                            progress_bar=False, log_output=False, cwd=str(out_nb.parent),
                            request_save_on_cell_execute=True)
        return {"status": "succeeded"}
    except PapermillExecutionError as exc:
        return {"status": "failed", "cell_index": exc.cell_index, "exec_count": exc.exec_count,
                "ename": exc.ename, "evalue": exc.evalue}
    except OSError as exc:  # e.g. the notebook itself could not be saved (disk full)
        return {"status": "failed", **_failing_cell(out_nb), "ename": type(exc).__name__, "evalue": str(exc)}


def _stop_child(proc: subprocess.Popen) -> None:
    for sig, grace in ((signal.SIGINT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def _run_child(notebook: Path, out_nb: Path, params: dict, budget: float | None = None) -> dict:
    """Execute the notebook in a child process with a real kernel; returns its result dict.

    A stop request (:class:`_Stop`) raised while waiting stops the child's process group and propagates.
    ``budget`` (seconds) is enforced here only when no signal handler does it (outside the main thread).
    """
    folder = RunFolder(out_nb.parent)
    params_file, result_file = folder.path / ".params.json", folder.path / ".execution.json"
    atomic_write_json(params_file, params)
    with open(folder.executor_log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-m", "recsys_lab.runs.child", str(notebook), str(out_nb),
                                 str(params_file), str(result_file)], start_new_session=True,
                                stdout=err, stderr=err)
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            stop = _Stop(signal.SIGALRM, budget)
            stop.cell = _failing_cell(out_nb)
            _stop_child(proc)
            raise stop from None
        except BaseException as exc:
            if isinstance(exc, _Stop):  # name the running cell before the interrupted child rewrites the notebook
                exc.cell = _failing_cell(out_nb)
            _stop_child(proc)
            raise
    result = _read_or_empty(result_file, "execution result") or {
        "status": "failed", "ename": "ChildProcessError", "cell_index": None, "exec_count": None,
        "evalue": f"executor exited with code {proc.returncode} (see {folder.executor_log})"}
    params_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    return result


def _reason(error: dict) -> str:
    """``cell N (Ename): value`` on one line: N is the execution count, else (a cell stopped before its kernel
    numbered it) ``index I`` of the cell in the notebook."""
    if error.get("exec_count") is not None:
        where = f"cell {error['exec_count']} "
    elif error.get("cell_index") is not None:
        where = f"cell index {error['cell_index']} "
    else:
        where = ""
    return f"{where}({error['ename']}): {error['evalue']}".strip().splitlines()[0]


def _phases(timings: dict, wall: float) -> tuple[dict, dict]:
    """Work phases (``compile`` split out of ``index``), ``overhead`` = wall - work, and the details."""
    phases = {k: round(v, 4) for k, v in timings.items() if k in PHASES}
    details = {k: round(v, 4) for k, v in timings.items() if k not in PHASES}
    compile_s = float(timings.get("index.numba_compile") or 0.0)
    if "index" in phases:
        compile_s = min(compile_s, phases["index"])
        phases["index"] = round(phases["index"] - compile_s, 4)
    phases["compile"] = round(compile_s, 4)
    phases["overhead"] = round(max(wall - sum(phases.values()), 0.0), 4)
    return phases, details


def _declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's ``parameters`` cell (papermill's own reading of it)."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


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
    RunError
        Unknown engine, or the notebook is missing (nothing is created).
    LockHeldError
        Another retrain holds the lock.
    OSError
        The run folder could not be written (e.g. disk full) while recording the outcome.
    """
    if engine not in ENGINES:
        raise RunError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    notebook = Path(notebook).resolve() if notebook else default_notebook()
    if not notebook.is_file():
        raise RunError(f"{notebook}: notebook not found (pass --notebook)")
    config = _absolute_paths(config)
    runs_dir = Path(runs_dir).resolve()
    budget = config.run.max_minutes * 60 if config.run.max_minutes > 0 else None
    if engine == "inprocess" and threading.current_thread() is not threading.main_thread():
        log.warning("execute() called outside the main thread: using the kernel engine")
        engine = "kernel"
    with RetrainLock(runs_dir, wait=wait) as lock:
        run_dir = start(config, runs_dir, notebook=notebook, like=like, engine=engine,
                        promote_requested=promote_if_passed)
        folder = RunFolder(run_dir)
        lock.set_run(run_dir.name)

        def on_stuck(stop: _Stop) -> None:  # watchdog thread, main thread stuck in native code
            reason = f"({stop.ename}): {stop.evalue}; the process was ended after {STOP_GRACE_S:.0f} s in native code"
            folder.update(status=stop.status, ended_at=utc_now(), reason=reason,
                          error={"cell_index": None, "exec_count": None, "ename": stop.ename, "evalue": stop.evalue},
                          promotion={"requested": promote_if_passed, "done": False, "reason": reason})
            print(f"run {run_dir.name} {stop.status.upper()}: {reason}", file=sys.stderr, flush=True)

        params = {"config": config.to_dict(), "run_dir": str(run_dir)}
        if "production" in _declared_parameters(notebook):  # champion and drift reference, or None
            prod_id = production_id(runs_dir)
            params["production"] = str(runs_dir / prod_id) if prod_id else None
        t0 = time.perf_counter()
        with _StopSignals(budget, on_stuck) as signals:
            stop: _Stop | None = None
            try:
                signals.arm()
                if engine == "inprocess":
                    # what the process holds before the run (its modules above all) outlives the run: the garbage
                    # collector skips it until the outcome is recorded (gc.unfreeze below); -0.1 s on ML-100k
                    gc.freeze()
                    result = _run_inprocess(notebook, folder.notebook, params)
                else:
                    result = _run_child(notebook, folder.notebook, params, None if signals.usable else budget)
                signals.disarm()
            except _Stop as exc:
                signals.disarm()
                stop = exc
                result = {"status": exc.status, **(exc.cell or _failing_cell(folder.notebook)), "ename": exc.ename,
                          "evalue": exc.evalue}
            wall = time.perf_counter() - t0
            status = result["status"]
            error = None if status == "succeeded" else {k: result.get(k) for k in ("cell_index", "exec_count",
                                                                                    "ename", "evalue")}
            reason = _reason(error) if error else None
            try:
                manifest, gate, metrics, promoted = _record(folder, config, result, error, reason, wall, t0,
                                                            promote_if_passed, signals)
            except OSError as exc:  # e.g. disk full: say so in one line; the notebook on disk stays valid
                raise RunFailedError(str(run_dir), f"{reason or status}; the outcome could not be recorded "
                                     f"({exc})", cell_index=(error or {}).get("cell_index"),
                                     ename=type(exc).__name__, evalue=str(exc)) from exc
            finally:
                signals.finished()
                gc.unfreeze()
            stop = stop or signals.stop
    return RunResult(run_id=run_dir.name, run_dir=run_dir, status=status, metrics=metrics, manifest=manifest,
                     reason=reason, gate=gate, promoted=promoted,
                     signal=stop.signum if stop is not None and not stop.timed_out else None)


def _record(folder: RunFolder, config: Config, result: dict, error: dict | None, reason: str | None, wall: float,
            t0: float, promote_if_passed: bool, signals: _StopSignals
            ) -> tuple[dict, GateResult | None, dict, bool]:
    """Write the outcome of an executed notebook: report, timings, gate, manifest, promotion."""
    status = result["status"]
    metrics = _read_or_empty(folder.metrics, "metrics file") if status == "succeeded" else {}
    gate = None
    if status == "succeeded":
        saved = _read_or_empty(folder.gate, "gate file")
        # the notebook decided; a succeeded run without its gate file fails closed (never recomputed here)
        gate = (GateResult.from_dict(saved) if saved else
                GateResult(passed=False, checks=[{"metric": None, "kind": "gate", "value": None, "bound": None,
                                                  "production": None, "passed": False,
                                                  "message": f"{folder.gate} missing: the notebook did not record "
                                                             "its gate"}]))
    data = _read_or_empty(folder.data, "data file") or None
    t_report = time.perf_counter()
    if folder.notebook.is_file():
        try:
            export_html(folder.notebook, folder.report, verdict=verdict_markdown(
                folder.run_id, status, reason=reason, gate=gate.to_dict() if gate else None, metrics=metrics,
                k=config.eval.k, warnings=(data or {}).get("warnings"),
                protocol=((data or {}).get("split") or {}).get("method"),
                promotion={"requested": promote_if_passed, "done": bool(gate and gate.passed and promote_if_passed
                                                                        and status == "succeeded"),
                           "reason": "the run did not succeed" if status != "succeeded" else
                           gate.reason if gate and not gate.passed else None}))
        except (RunError, OSError) as exc:
            log.warning("no report.html: %s", exc)
    phases, details = _phases(_read_or_empty(folder.timings, "timings file"), wall)
    phases["report"] = round(time.perf_counter() - t_report, 4)
    phases["total"] = round(time.perf_counter() - t0, 4)

    def promotion(done: bool = False) -> dict:
        stop = signals.stop  # a signal while the outcome is recorded still cancels the promotion
        if not promote_if_passed:
            why = "not requested"
        elif done:
            why = None
        elif status != "succeeded":
            why = f"the run {status}: {reason}"
        elif stop is not None:
            why = f"stopped by {stop.ename} before promotion"
        elif gate is not None and not gate.passed:
            why = f"gate failed: {gate.reason}"
        else:
            why = "gate passed; promoting"
        return {"requested": promote_if_passed, "done": done, "reason": why}

    manifest = folder.update(status=status, ended_at=utc_now(), data=data,
                             timings=phases, timing_details=details, error=error, reason=reason,
                             gate=gate.to_dict() if gate else None, promotion=promotion())
    promoted = False
    if promotion()["reason"] == "gate passed; promoting":
        promote(folder.runs_dir, folder.run_id)
        promoted = True
        manifest = folder.update(promoted=True, promotion=promotion(done=True))
    elif manifest["promotion"] != promotion():
        manifest = folder.update(promotion=promotion())
    return manifest, gate, metrics, promoted


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
