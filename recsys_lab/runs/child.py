"""The kernel engine: a child process that executes one notebook with papermill in a fresh Jupyter kernel.

Both sides live here. The parent calls :func:`run_child`, which starts ``python -m recsys_lab.runs.child INPUT OUTPUT
PARAMS_JSON RESULT_JSON`` in its own session (its stdout and stderr go to the run's ``executor.log``), waits for it
and stops its whole process group when a stop request interrupts the wait. The child (:func:`main`) dies with its
parent and writes RESULT_JSON with ``{"status": "succeeded"}`` or the failing cell's ``cell_index, exec_count,
ename, evalue``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from recsys_lab._fs import atomic_write_json


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (kill -9 of the CLI must not leave an orphan retrain)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


__all__ = ["main", "run_child"]


def main(argv: list[str]) -> int:
    """Execute one notebook with papermill's kernel engine (``python -m recsys_lab.runs.child IN OUT PARAMS``).

    Parameters
    ----------
    argv : list of str
        Input notebook, output notebook and the parameters as a JSON file path.

    Returns
    -------
    int
        The process exit code: 0 on success, non-zero when a cell failed (the output notebook keeps it).
    """
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from recsys_lab.runs.engine import register

    register()  # atomic saves of the output notebook

    src, dst, params_file, result_file = argv
    params = json.loads(Path(params_file).read_text())
    try:
        pm.execute_notebook(src, dst, parameters=params, kernel_name="python3", progress_bar=False,
                            log_output=False, cwd=str(Path(dst).parent), request_save_on_cell_execute=True)
        result = {"status": "succeeded"}
    except PapermillExecutionError as exc:
        result = {"status": "failed", "cell_index": exc.cell_index, "exec_count": exc.exec_count,
                  "ename": exc.ename, "evalue": exc.evalue}
    except Exception as exc:  # kernel died or could not start: still a failed, inspectable run
        result = {"status": "failed", "cell_index": None, "exec_count": None, "ename": type(exc).__name__,
                  "evalue": str(exc)}
    atomic_write_json(result_file, result)
    return 0


def _stop_child(proc: subprocess.Popen) -> None:
    """SIGINT, then SIGTERM, then SIGKILL to the child's process group, 5 s apart, until it is gone."""
    for sig, grace in ((signal.SIGINT, 5), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue
        except ProcessLookupError:
            return


def run_child(notebook: Path, out_nb: Path, params: dict, budget: float | None = None) -> dict:
    """Execute a notebook in a child process with a real kernel (the parent's side of :func:`main`).

    A stop request (:class:`recsys_lab.runs.signals.Stop`) raised while waiting names the running cell, stops the
    child's process group and propagates.

    Parameters
    ----------
    notebook : Path
        The notebook to run.
    out_nb : Path
        The executed notebook, inside its run folder.
    params : dict
        Injected into the ``parameters`` cell.
    budget : float, optional
        Seconds; enforced here only when no signal handler does it (outside the main thread).

    Returns
    -------
    dict
        The child's result (see :func:`recsys_lab.runs.engine.run_inprocess`); a child that wrote none is a failed
        run naming its exit code and ``executor.log``.

    Raises
    ------
    Stop
        The budget ran out (``SIGALRM``) or a signal interrupted the wait; the child is stopped first.
    """
    from recsys_lab.runs.record import failing_cell, read_or_empty
    from recsys_lab.runs.signals import Stop
    from recsys_lab.store.folder import RunFolder

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
            stop = Stop(signal.SIGALRM, budget)
            stop.cell = failing_cell(out_nb)
            _stop_child(proc)
            raise stop from None
        except BaseException as exc:
            if isinstance(exc, Stop):  # name the running cell before the interrupted child rewrites the notebook
                exc.cell = failing_cell(out_nb)
            _stop_child(proc)
            raise
    result = read_or_empty(result_file, "execution result") or {
        "status": "failed", "ename": "ChildProcessError", "cell_index": None, "exec_count": None,
        "evalue": f"executor exited with code {proc.returncode} (see {folder.executor_log})"}
    params_file.unlink(missing_ok=True)
    result_file.unlink(missing_ok=True)
    return result


if __name__ == "__main__":
    _die_with_parent()
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # see cli.main._skip_slow_iri_checker
    sys.exit(main(sys.argv[1:]))
