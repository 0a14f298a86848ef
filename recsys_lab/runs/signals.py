"""Stop signals and the time budget of a running retrain.

While armed, SIGTERM and SIGINT (and SIGALRM at the time budget) raise :class:`Stop` inside the running cell; the
run is then recorded (``failed`` with the signal named, or ``timed_out``). A watchdog thread covers a cell stuck in
a native call that never returns to Python: :data:`STOP_GRACE_S` seconds after the signal it records the run
(``on_stuck``) and ends the process (exit code ``128 + signal``, or :data:`EXIT_TIMED_OUT` for the budget).
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from typing import Any, Callable

__all__ = ["STOP_GRACE_S", "EXIT_TIMED_OUT", "MAX_BUDGET_S", "Stop", "StopSignals"]

STOP_GRACE_S = 15.0
"""Seconds a stopped run has to record itself before the watchdog ends the process."""
EXIT_TIMED_OUT = 4
"""Exit status of a process the watchdog ends after the time budget."""
MAX_BUDGET_S = 60.0 * 1_000_000
"""The longest time budget (a million minutes): the interval timer overflows on much larger ones."""


class Stop(BaseException):
    """Raised in the main thread by a stop signal (not an ``Exception``: library code must not swallow it).

    Parameters
    ----------
    signum : int
        The signal; ``SIGALRM`` means the time budget ran out (``timed_out``).
    budget : float, optional
        The time budget in seconds (for the message).

    Attributes
    ----------
    ename, evalue : str
        Recorded as the failing cell's error (``TimeoutError`` or the signal's name).
    cell : dict or None
        ``cell_index`` and ``exec_count`` of the running cell, when known before the notebook is touched again.
    """

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


class StopSignals:
    """While armed, SIGTERM / SIGINT / the budget's SIGALRM raise :class:`Stop` in the main thread (once).

    A watchdog thread learns of each signal through ``signal.set_wakeup_fd`` (written by the C-level handler, so
    it works even while the main thread is stuck in a native call); if the main thread has not called
    :meth:`finished` ``grace`` seconds later, the watchdog calls ``on_stuck(stop)`` and ends the process.
    Usable only from the main thread (``usable`` is False elsewhere: nothing is installed).

    Parameters
    ----------
    budget : float or None
        Time budget in seconds (None: none).
    on_stuck : callable
        Called by the watchdog with the :class:`Stop` when the main thread did not record the run in time.
    grace : float
        Seconds the main thread has to record a stopped run (default :data:`STOP_GRACE_S`).
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)

    def __init__(self, budget: float | None, on_stuck: Callable[[Stop], None], grace: float = STOP_GRACE_S) -> None:
        self.budget, self.on_stuck, self.grace = budget, on_stuck, grace
        self.usable = threading.current_thread() is threading.main_thread()
        self.armed = False
        self.stop: Stop | None = None
        self._done = threading.Event()
        self._saved: dict[int, Any] = {}
        self._old_fd = -1
        self._socks: tuple[socket.socket, socket.socket] | None = None
        self._thread: threading.Thread | None = None

    def _handler(self, signum: int, frame: Any) -> None:
        if self.stop is not None:
            return  # already stopping: the first signal decides
        self.stop = Stop(signum, self.budget)
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
            stop = self.stop or Stop(signum, self.budget)
            try:
                self.on_stuck(stop)
            finally:
                os._exit(stop.exit_code)

    def __enter__(self) -> "StopSignals":
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
