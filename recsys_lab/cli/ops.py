"""``recsys-lab runs check`` (SLA and staleness, for cron or a scheduler's sensor), the project's own config file,
and the alerts sent after a retrain."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.exits import EXIT_STALE
from recsys_lab.cli.options import RUNS_DIR, config_option
from recsys_lab.config import Config, load_config

__all__ = ["PROJECT_CONFIG", "project_config", "check", "alert_after_run"]

PROJECT_CONFIG = Path("config.toml")
"""The config file of a project folder (``recsys-lab init``), read when no ``-c`` is given."""


def project_config(config: Optional[Path]) -> tuple[Optional[Path], str]:
    """The config file a command reads: ``-c FILE``, else ``./config.toml`` when present, else none (defaults).

    Parameters
    ----------
    config : Path or None
        ``--config``.

    Returns
    -------
    path : Path or None
        The file to read (None: the defaults).
    line : str
        What is read, for the command's first line of output.
    """
    if config is not None:
        return config, f"config: {config}"
    if PROJECT_CONFIG.is_file():
        return PROJECT_CONFIG, f"config: ./{PROJECT_CONFIG} (this project's; -c FILE to choose another)"
    return None, f"config: defaults (no ./{PROJECT_CONFIG} here; -c FILE to use one)"


def _alert_line(rec: dict, where: Path) -> str:
    """``alert RULE (SEVERITY) ...`` on one line: how many channels got it, and where it is recorded."""
    n = len(rec["deliveries"])
    sent = sum(bool(d["delivered"]) for d in rec["deliveries"])
    how = (f"sent to {sent} of {n} channel(s)" if n else "not sent (no channel: set alerts.urls or alerts.command)")
    return f"alert {rec['rule']} ({rec['severity']}) {how}; recorded in {where}"


def alert_after_run(run_dir: Path, config: Config) -> None:
    """Send and record the alerts of a finished retrain (:func:`recsys_lab.ops.alerts.after_run`), one line each.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    config : Config
        The run's configuration.
    """
    from recsys_lab.ops.alerts import ALERTS_FILE, after_run

    for rec in after_run(run_dir, config):
        typer.echo(_alert_line(rec, Path(run_dir) / ALERTS_FILE), err=True)


def check(
    sla: Optional[str] = typer.Option(None, "--sla", help="A run must have succeeded within this long, e.g. 26h "
                                      "(default alerts.sla; 0h: not checked)."),
    max_production_age: Optional[str] = typer.Option(None, "--max-production-age", help="Production's run must "
                                                     "be at most this old, e.g. 3d (default "
                                                     "alerts.max_production_age; 0d: not checked)."),
    config: Optional[Path] = config_option("TOML config (its alerts section; default ./config.toml when "
                                           "present)."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Exit 0 when a run succeeded within the SLA and production is fresh; else send the `sla` alert and exit 6."""
    from recsys_lab.ops.alerts import ALERTS_FILE
    from recsys_lab.ops.sla import check_and_alert

    path, _ = project_config(config)
    cfg = load_config(path)
    result, records = check_and_alert(runs_dir, cfg, sla=sla, max_production_age=max_production_age)
    if result.ok:
        typer.echo(f"ok: newest succeeded run {result.newest_success}, production {result.production}")
        return
    for problem in result.problems:
        typer.echo(f"runs check FAILED: {problem}", err=True)
    for rec in records:
        typer.echo(_alert_line(rec, runs_dir / ALERTS_FILE), err=True)
    raise typer.Exit(EXIT_STALE)
