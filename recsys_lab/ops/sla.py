"""The SLA and staleness check behind ``recsys-lab runs check``: did a run succeed recently, is production fresh?

:func:`check` reads the registry (:func:`recsys_lab.runs.registry.table`): the newest succeeded run must have
ended within the SLA (``alerts.sla``, default 26 h: a nightly schedule plus slack) and the production run within
``alerts.max_production_age`` (default 3 days). :func:`check_and_alert` sends the ``sla`` alert when either is
missed and records it in ``runs/alerts.json`` (the check is about the registry, not about one run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from recsys_lab.config import Config, parse_duration
from recsys_lab.ops.alerts import ALERTS_FILE, Alert, deliver, record, report_link

__all__ = ["SlaCheck", "check", "check_and_alert", "format_age"]


@dataclass
class SlaCheck:
    """Outcome of :func:`check`.

    Attributes
    ----------
    ok : bool
        No problem found.
    problems : list of str
        One line each: the SLA missed, production too old (or missing).
    newest_success : str or None
        Run id of the newest succeeded run.
    production : str or None
        The production run id.
    newest : str or None
        The newest run of any status.
    """

    ok: bool
    problems: list[str] = field(default_factory=list)
    newest_success: str | None = None
    production: str | None = None
    newest: str | None = None


def format_age(seconds: float) -> str:
    """``3d 4h``, ``5h 12m``, ``42m`` or ``17s``.

    Parameters
    ----------
    seconds : float
        A duration.

    Returns
    -------
    str
        The two largest units.
    """
    s = int(max(seconds, 0))
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m" if m else f"{s}s"


def _when(row: dict[str, Any]) -> datetime | None:
    """When a run ended (its start when no end is recorded), timezone-aware."""
    for key in ("ended_at", "started_at"):
        text = row.get(key)
        if not text:
            continue
        try:
            t = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            continue
        return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return None


def check(runs_dir: str | Path, *, sla: str = "26h", max_production_age: str = "3d",
          now: datetime | None = None) -> SlaCheck:
    """Whether a run succeeded within the SLA and production is fresh.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    sla : str
        A duration (``26h``; :func:`recsys_lab.config.parse_duration`); ``0h`` skips this check.
    max_production_age : str
        A duration (``3d``); ``0d`` skips this check.
    now : datetime, optional
        The current time (default: now, UTC).

    Returns
    -------
    SlaCheck

    Raises
    ------
    ConfigError
        A duration that does not parse (naming ``--sla`` or ``--max-production-age``).
    RunError
        The run manifests cannot be read.
    """
    from recsys_lab.runs.registry import table

    sla_s = parse_duration(sla, "--sla")
    age_s = parse_duration(max_production_age, "--max-production-age")
    now = now or datetime.now(timezone.utc)
    t = table(runs_dir)
    out = SlaCheck(ok=True, newest=t["run_id"][0] if t.height else None)
    succeeded = t.filter(pl.col("status") == "succeeded").to_dicts()
    if succeeded:
        out.newest_success = succeeded[0]["run_id"]
    if sla_s > 0:
        when = _when(succeeded[0]) if succeeded else None
        if when is None:
            out.problems.append(f"SLA missed: no run succeeded in the last {sla} (no succeeded run at all)")
        elif (now - when).total_seconds() > sla_s:
            out.problems.append(f"SLA missed: no run succeeded in the last {sla} (newest: {out.newest_success}, "
                                f"{format_age((now - when).total_seconds())} ago)")
    prod = t.filter(pl.col("production")).to_dicts()
    out.production = prod[0]["run_id"] if prod else None
    if age_s > 0:
        when = _when(prod[0]) if prod else None
        if not prod:
            out.problems.append("no production run")
        elif when is None or (now - when).total_seconds() > age_s:
            age = format_age((now - when).total_seconds()) if when else "of unknown age"
            out.problems.append(f"production {out.production} is stale: {age} old (max {max_production_age})")
    out.ok = not out.problems
    return out


def check_and_alert(runs_dir: str | Path, config: Config, *, sla: str | None = None,
                    max_production_age: str | None = None) -> tuple[SlaCheck, list[dict[str, Any]]]:
    """:func:`check`, and when it fails the ``sla`` alert, delivered and recorded in ``runs/alerts.json``.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    config : Config
        ``alerts`` (channels, severity, and the default ``sla`` and ``max_production_age``).
    sla, max_production_age : str, optional
        Override ``alerts.sla`` and ``alerts.max_production_age``.

    Returns
    -------
    check : SlaCheck
    records : list of dict
        The alert records (:func:`recsys_lab.ops.alerts.deliver`); [] when the check passed or the ``sla`` rule
        is off.

    Raises
    ------
    ConfigError
        A duration that does not parse.
    RunError
        The run manifests cannot be read.
    OSError
        ``runs/alerts.json`` cannot be written.
    """
    runs_dir = Path(runs_dir)
    result = check(runs_dir, sla=sla or config.alerts.sla,
                   max_production_age=max_production_age or config.alerts.max_production_age)
    if result.ok or "sla" not in config.alerts.rules:
        return result, []
    run_id = result.newest
    link = report_link(runs_dir / run_id, config) if run_id else None
    alert = Alert("sla", config.alerts.level("sla"), run_id, "; ".join(result.problems), link)
    records = deliver([alert], config)
    record(runs_dir / ALERTS_FILE, records)
    return result, records
