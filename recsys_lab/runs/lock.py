"""One retrain at a time per runs directory: an exclusive ``flock`` on ``runs/.retrain.lock``.

The OS releases the lock when its holder exits or is killed, so a lock left by ``kill -9`` is stale by
construction and the next retrain takes it over (logging the previous holder) without manual cleanup.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from recsys_lab.errors import RunError
from recsys_lab.store.folder import lock_file, pid_alive, read_json_optional, utc_now

__all__ = ["RetrainLock", "LockHeldError"]

log = logging.getLogger(__name__)


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

    Parameters
    ----------
    runs_dir : str or Path
    wait : float
        Seconds to wait for the lock (default 0: fail at once).

    Raises
    ------
    LockHeldError
        From :meth:`acquire`: the lock is still held after ``wait`` seconds; the message names the holder.
    """

    def __init__(self, runs_dir: str | Path, *, wait: float = 0.0) -> None:
        self.path = lock_file(runs_dir)
        self.wait = wait
        self._fh: IO[str] | None = None

    def holder(self) -> dict:
        """What the holder wrote into the lock file (``pid, run_id, since, host``); {} when unknown.

        Returns
        -------
        dict
        """
        try:
            return read_json_optional(self.path, "lock file") or {}
        except RunError:  # being rewritten by its holder, or empty
            return {}

    def acquire(self, run_id: str | None = None) -> "RetrainLock":
        """Take the lock (waiting up to ``wait`` seconds) and record this process as its holder.

        Parameters
        ----------
        run_id : str, optional
            Run id recorded with the holder (set later with :meth:`set_run` when not yet known).

        Returns
        -------
        RetrainLock
            ``self``, holding the lock. A lock left by a dead process is taken over with a logged warning.

        Raises
        ------
        LockHeldError
            Still held by another process after ``wait`` seconds.
        """
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
        if previous and not pid_alive(previous.get("pid")):
            log.warning("taking over a stale retrain lock left by pid %s (run %s)", previous.get("pid"),
                        previous.get("run_id"))
        self._fh = fh
        self._write(run_id)
        return self

    def _write(self, run_id: str | None) -> None:
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps({"pid": os.getpid(), "run_id": run_id, "since": utc_now(),
                                   "host": socket.gethostname()}))
        self._fh.flush()

    def set_run(self, run_id: str) -> None:
        """Record the run id of the holder (once the run folder exists).

        Parameters
        ----------
        run_id : str
            The holder's run id; ignored when this object does not hold the lock.
        """
        if self._fh:
            self._write(run_id)

    def release(self) -> None:
        """Clear the holder record and release the lock (no-op when not held)."""
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
