"""The CLI's exit codes, and the typed error of a command used the wrong way.

0 success; 1 the run (or the command's work) failed or crashed (a run folder keeps the executed notebook); 2 bad
usage, config or reference (nothing was run); 3 the run succeeded but failed its metric gate (not promoted); 4 the
run exceeded its time budget (``timed_out``); 5 another retrain holds the lock; 6 ``runs check``: no run succeeded
within the SLA or production is too old (the ``sla`` alert was sent); 128 + N the run was stopped by
signal N and recorded as ``failed`` with the signal named (:data:`EXIT_TERMINATED` = 143 for SIGTERM, 130 for
SIGINT / Ctrl-C), the shell's convention for a process ended by a signal. Which error gives which code is decided
once, by :func:`recsys_lab.cli.main.exit_code`.
"""

from __future__ import annotations

from recsys_lab.errors import ConfigError

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "EXIT_GATE", "EXIT_TIMEOUT", "EXIT_LOCKED", "EXIT_STALE", "EXIT_TERMINATED",
           "UsageError"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_TIMEOUT = 4
EXIT_LOCKED = 5
EXIT_STALE = 6
"""``runs check``: no run succeeded within the SLA, or production is older than allowed."""
EXIT_TERMINATED = 143
"""128 + SIGTERM: the run was stopped by SIGTERM (128 + N for signal N)."""


class UsageError(ConfigError):
    """A command was called the wrong way (e.g. both or neither of two exclusive options): exit 2, one line."""
