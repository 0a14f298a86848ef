"""``recsys-lab``: the command line (the typer app, its command table and the entry point :func:`main`).

The only module that configures logging lives below it (each command sets up its own); the commands are grouped
by family: :mod:`recsys_lab.cli.retrain`, :mod:`recsys_lab.cli.runs`, :mod:`recsys_lab.cli.serve`,
:mod:`recsys_lab.cli.data`, :mod:`recsys_lab.cli.tools`. A command raises; :func:`main` turns every recsys_lab
error (and an ``OSError``) into one line on stderr and an exit code, in one place (:func:`exit_code`).

Exit codes (:mod:`recsys_lab.cli.exits`): 0 success; 1 the run failed or crashed (its folder keeps the executed
notebook); 2 bad usage, config or reference (nothing was run); 3 the run succeeded but failed its metric gate (not
promoted); 4 the run exceeded its time budget (``timed_out``); 5 another retrain holds the lock; 6 ``runs check``
found the SLA missed or production stale; 128 + N the run was
stopped by signal N and recorded as ``failed`` with the signal named (:data:`EXIT_TERMINATED` = 143 for SIGTERM,
130 for SIGINT / Ctrl-C), the shell's convention for a process ended by a signal.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from recsys_lab.cli import data, ops, retrain, runs, scale, serve, tools
from recsys_lab.cli.exits import (EXIT_FAILED, EXIT_GATE, EXIT_LOCKED, EXIT_TERMINATED, EXIT_TIMEOUT, EXIT_USAGE,
                                  UsageError)
from recsys_lab.cli.options import merge_pairs
from recsys_lab.errors import ConfigError, RecsysLabError, RunFailedError

__all__ = ["app", "main", "exit_code", "EXIT_FAILED", "EXIT_USAGE", "EXIT_GATE", "EXIT_TIMEOUT", "EXIT_LOCKED",
           "EXIT_TERMINATED", "UsageError"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="recsys_lab: train, index, evaluate and report recommender models from notebooks.")

# the command table, in the order `recsys-lab --help` lists it (sub-apps come after the commands)
app.command()(retrain.retrain)
app.command("config")(retrain.show_config)
runs.app.command("check")(ops.check)
runs.app.command("monitor")(ops.monitor)
app.add_typer(runs.app, name="runs")
app.command()(serve.recommend)
app.command()(serve.update)
app.command()(data.ingest)
app.command()(data.init)
app.command()(data.lab)
app.command()(tools.bench)
app.command()(data.generate)
app.command()(ops.backfill)
app.add_typer(tools.study_app, name="study")
app.command()(serve.similar)
app.command()(serve.personas)
app.command()(serve.serve)
app.command()(scale.score)
app.command()(scale.sweep)

WORK_FAILED = {"ingest": EXIT_FAILED}
"""Commands whose work (not their usage) failed when they raise a recsys_lab error other than a ConfigError."""


def exit_code(exc: BaseException, command: str | None = None) -> int:
    """The exit code of a command that raised ``exc``: the one mapping of errors to exit codes.

    Parameters
    ----------
    exc : BaseException
        A :class:`recsys_lab.errors.RecsysLabError` or an ``OSError``.
    command : str, optional
        The command that raised it (the first word after ``recsys-lab``).

    Returns
    -------
    int
        5 another retrain holds the lock (:class:`recsys_lab.runs.lock.LockHeldError`); 1 the run could not be
        recorded (:class:`recsys_lab.errors.RunFailedError`) or an ``OSError``; 2 a
        :class:`recsys_lab.errors.ConfigError` (bad usage); any other recsys_lab error: 2 (a bad reference, nothing
        was run), or 1 for a command whose work failed (:data:`WORK_FAILED`: ``ingest``).
    """
    from recsys_lab.runs.lock import LockHeldError

    if isinstance(exc, LockHeldError):
        return EXIT_LOCKED
    if isinstance(exc, (RunFailedError, OSError)):
        return EXIT_FAILED
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    return WORK_FAILED.get(command or "", EXIT_USAGE)


def _message(exc: BaseException) -> str:
    """The error on one line (every failed check is on the first line of a recsys_lab error)."""
    if isinstance(exc, OSError) and not isinstance(exc, RecsysLabError):
        text = f"{exc.filename or 'runs'}: {exc.strerror or exc}"
    else:
        text = str(exc).strip()
    return text.splitlines()[0] if text else "unknown"


def _skip_slow_iri_checker() -> None:
    """Don't let jsonschema (via nbformat) import ``rfc3987_syntax``: it builds ~35 Lark parsers at import (1-2 s
    per command on this machine) for the ``iri`` formats no notebook schema uses; jsonschema skips a checker whose
    import fails (python-jsonschema/jsonschema#1428). Only in the CLI's own process."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry point.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code (see the module docstring); a recsys_lab error or an ``OSError`` is printed as one line
        ``error: ...`` on stderr.
    """
    _skip_slow_iri_checker()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = merge_pairs(argv)
        typer.main.get_command(app).main(args=argv, prog_name="recsys-lab", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except (RecsysLabError, OSError) as exc:
        typer.echo(f"error: {_message(exc)}", err=True)
        return exit_code(exc, argv[0] if argv else None)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
