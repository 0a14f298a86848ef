"""``recsys-lab runs check`` (SLA and staleness, for cron or a scheduler's sensor), ``runs monitor`` (the page of
every run over time), ``backfill`` (retrains as of past dates), the project's own config file, and what follows a
retrain (its alerts and the monitoring page)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.exits import EXIT_FAILED, EXIT_STALE
from recsys_lab.cli.options import RUNS_DIR, build_config, config_option, data_option, param_option
from recsys_lab.config import Config, load_config

__all__ = ["PROJECT_CONFIG", "project_config", "check", "alert_after_run", "monitor", "monitor_after_run",
           "backfill"]

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
        if rec["deliveries"]:  # with no channel the alert is only recorded: a failure stays one line on stderr
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


def monitor_after_run(runs_dir: Path) -> None:
    """Rewrite ``runs/index.html`` after a retrain; a page that cannot be written is one warning line, never a failed
    run.

    Parameters
    ----------
    runs_dir : Path
        The runs directory.
    """
    from recsys_lab.errors import RecsysLabError
    from recsys_lab.ops.monitor import write

    try:
        write(runs_dir)
    except (RecsysLabError, OSError) as exc:
        typer.echo(f"warning: monitoring page not written: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                   err=True)


def monitor(runs_dir: Path = RUNS_DIR) -> None:
    """Write runs/index.html: every run over time (NDCG, recall, groups, drift, SLA, gate), one offline page."""
    from recsys_lab.ops.monitor import write

    typer.echo(f"monitoring page: {write(runs_dir)}")


def backfill(
    start: str = typer.Option(..., "--from", help="First cut-off, an ISO date such as 1998-01-01."),
    end: str = typer.Option(..., "--to", help="Last cut-off (included when the spacing reaches it)."),
    every: str = typer.Option("7d", "--every", help="Spacing of the cut-offs, e.g. 7d, 30d, 12h."),
    config: Optional[Path] = config_option("TOML config of every run (default ./config.toml when present)."),
    param: Optional[list[str]] = param_option("Override one parameter, e.g. -p model.epochs 3 (repeatable)."),
    data: Optional[Path] = data_option("MovieLens 100k directory or zip (offline machines)."),
    promote: bool = typer.Option(False, "--promote", help="Promote each run that succeeds and passes its gate, "
                                 "in date order (the last one stays production; default: backfilled runs stay "
                                 "candidates)."),
    runs_dir: Path = RUNS_DIR,
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Notebook to execute (as retrain)."),
    engine: str = typer.Option("inprocess", "--engine", help="inprocess or kernel (as retrain)."),
) -> None:
    """Retrain as of past cut-offs (data.until: only the data before each date), then write runs/index.html."""
    from recsys_lab.ops.backfill import backfill as run_backfill, cutoffs
    from recsys_lab.ops.monitor import write

    dates = cutoffs(start, end, every)
    path, line = project_config(config)
    typer.echo(line)
    cfg = build_config(path, param, data)
    typer.echo(f"backfill: {len(dates)} runs as of {', '.join(dates)}")

    def say(date: str, result) -> None:  # noqa: ANN001
        gate = "" if result.gate is None else "; gate passed" if result.gate.passed else "; gate refused"
        ndcg = result.metrics.get(f"ndcg@{cfg.eval.k}")
        shown = f"; ndcg@{cfg.eval.k} {ndcg:.4f}" if isinstance(ndcg, float) else ""
        typer.echo(f"as of {date}: run {result.run_id} {result.status}{gate}{shown}"
                   f"{'; promoted' if result.promoted else ''}")

    results = run_backfill(cfg, dates, runs_dir=runs_dir, promote=promote, notebook=notebook, engine=engine,
                           on_run=say)
    typer.echo(f"monitoring page: {write(runs_dir)}")
    failed = [r.run_id for r in results if r.status != "succeeded"]
    if failed:
        typer.echo(f"backfill: {len(failed)} of {len(results)} runs did not succeed: {', '.join(failed)}", err=True)
        raise typer.Exit(EXIT_FAILED)
