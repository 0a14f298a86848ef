"""Child process that executes one notebook with papermill (so the parent can enforce a time budget).

Usage (internal): ``python -m recsys_lab.runs.child INPUT OUTPUT PARAMS_JSON RESULT_JSON``. Writes RESULT_JSON
with ``{"status": "succeeded"}`` or the failing cell's ``cell_index, exec_count, ename, evalue``.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
from pathlib import Path

from recsys_lab._fs import atomic_write_json


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the parent dies (kill -9 of the CLI must not leave an orphan retrain)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


__all__ = ["main"]

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


if __name__ == "__main__":
    _die_with_parent()
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # see cli._skip_slow_iri_checker
    sys.exit(main(sys.argv[1:]))
