"""``recsys-lab backfill``: retrains as of past cut-offs, so that a new project's monitoring page has a history.

:func:`cutoffs` spaces the dates; :func:`backfill` runs one ordinary retrain per date with ``data.until`` set to it
(only the interactions before it are loaded: :func:`recsys_lab.data.sources.until`), one after the other, and marks
each run folder's ``run.json`` with ``backfill: {"until": DATE, "batch": FIRST_RUN_ID}``. A backfilled run is a
normal run (gate, report, metrics); it is promoted only when asked (``promote``). The monitoring page
(:mod:`recsys_lab.ops.monitor`) orders runs by their cut-off.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from recsys_lab.config import Config, parse_duration
from recsys_lab.errors import ConfigError
from recsys_lab.runs.execute import RunResult, execute
from recsys_lab.store.folder import update_manifest

__all__ = ["MAX_POINTS", "cutoffs", "backfill"]

log = logging.getLogger(__name__)

MAX_POINTS = 200
"""Most cut-offs one backfill may ask for (a typo such as ``--every 1m`` would otherwise mean thousands)."""


def _parse(text: str, option: str) -> datetime:
    try:
        t = datetime.fromisoformat(str(text))
    except ValueError:
        raise ConfigError(f"expected an ISO date such as 1998-01-01, got {text!r}", parameter=option) from None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def cutoffs(start: str, end: str, every: str = "7d") -> list[str]:
    """The cut-off dates ``start, start + every, ...`` up to ``end`` included.

    Parameters
    ----------
    start, end : str
        ISO dates or datetimes (UTC when they carry no offset); ``end`` must not be before ``start``.
    every : str
        Spacing, a duration such as ``7d``, ``30d`` or ``12h`` (:func:`recsys_lab.config.parse_duration`).

    Returns
    -------
    list of str
        ISO dates (``1998-01-01``), or datetimes when a cut-off falls within a day.

    Raises
    ------
    ConfigError
        A date or the spacing cannot be read, ``end`` is before ``start``, the spacing is 0, or more than
        :data:`MAX_POINTS` cut-offs would be made.
    """
    t0, t1 = _parse(start, "--from"), _parse(end, "--to")
    step = parse_duration(every, "--every")
    if step <= 0:
        raise ConfigError("must be more than 0", parameter="--every")
    if t1 < t0:
        raise ConfigError(f"{end} is before --from {start}", parameter="--to")
    n = int((t1 - t0).total_seconds() // step) + 1
    if n > MAX_POINTS:
        raise ConfigError(f"{n} cut-offs from {start} to {end} every {every}; at most {MAX_POINTS}",
                          parameter="--every")
    out = []
    for i in range(n):
        t = t0 + timedelta(seconds=step * i)
        out.append(t.date().isoformat() if t.time() == datetime.min.time() else t.isoformat())
    return out


def backfill(config: Config, dates: list[str], *, runs_dir: str | Path = "runs", promote: bool = False,
             notebook: str | Path | None = None, engine: str = "inprocess",
             on_run: Callable[[str, RunResult], None] | None = None) -> list[RunResult]:
    """One retrain per cut-off, oldest first, each on the data before its date.

    Parameters
    ----------
    config : Config
        The configuration of every run; ``data.until`` is set to each date in turn.
    dates : list of str
        Cut-offs (:func:`cutoffs`).
    runs_dir : str or Path
        The runs directory.
    promote : bool
        Promote each run that succeeds and passes its gate (default False: backfilled runs stay candidates).
    notebook : str or Path, optional
        The retrain notebook (see :func:`recsys_lab.runs.execute.execute`).
    engine : str
        ``inprocess`` or ``kernel``.
    on_run : callable, optional
        Called with ``(date, result)`` after each run (the CLI prints a line).

    Returns
    -------
    list of RunResult
        One per date, whatever its status (a failed run does not stop the backfill).

    Raises
    ------
    ConfigError
        A date is not a valid ``data.until``.
    RunError, LockHeldError, RunFailedError
        As :func:`recsys_lab.runs.execute.execute` (the backfill stops there; the runs already made stay).
    """
    results: list[RunResult] = []
    for date in dates:
        result = execute(config.replace({"data.until": date}), runs_dir=runs_dir, notebook=notebook,
                         promote_if_passed=promote, engine=engine)
        batch = results[0].run_id if results else result.run_id
        result.manifest = update_manifest(result.run_dir, backfill={"until": date, "batch": batch})
        log.info("backfill %s: run %s %s", date, result.run_id, result.status)
        results.append(result)
        if on_run is not None:
            on_run(date, result)
    return results
