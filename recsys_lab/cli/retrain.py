"""``recsys-lab retrain`` (the scheduled path: execute the retrain notebook into a run folder) and ``config``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.exits import EXIT_FAILED, EXIT_GATE, EXIT_TIMEOUT
from recsys_lab.cli.options import RUNS_DIR, build_config, config_option, data_option, param_option
from recsys_lab.config import Config
from recsys_lab.errors import ConfigError

__all__ = ["retrain", "show_config"]


def retrain(
    config: Optional[Path] = config_option("TOML config file (see `recsys-lab config`); default ./config.toml "
                                           "when present (a project folder made by `recsys-lab init`)."),
    param: Optional[list[str]] = param_option("Override one parameter, e.g. -p model.epochs 20 (repeatable)."),
    data: Optional[Path] = data_option("MovieLens 100k directory or zip (offline machines); "
                                       "default $RECSYS_LAB_DATA_DIR, else download into warehouse/."),
    promote: bool = typer.Option(False, "--promote", help="Promote the run if it succeeds and passes the gate."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Time budget (SLA); overrides "
                                                "run.max_minutes. Past it the run is stopped as timed_out."),
    wait: float = typer.Option(0.0, "--wait", help="Seconds to wait for another retrain's lock (default: fail now)."),
    like: Optional[str] = typer.Option(None, "--like", help="Rerun with the config of this run (id, prefix, "
                                       "'production' or 'latest') on the current data; -p still overrides."),
    runs_dir: Path = RUNS_DIR,
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Notebook to execute (default "
                                            "./notebooks/retrain.ipynb if present, else the one shipped)."),
    engine: str = typer.Option("inprocess", "--engine", help="inprocess: run the cells in this process (no kernel "
                               "start-up); kernel: a fresh Jupyter kernel in a child process."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress."),
) -> None:
    """Train, index, evaluate and report: execute the retrain notebook with papermill into runs/<run_id>/."""
    from recsys_lab.cli.ops import alert_after_run, monitor_after_run, project_config
    from recsys_lab.report.text import format_summary
    from recsys_lab.runs.execute import execute
    from recsys_lab.runs.registry import resolve
    from recsys_lab.store.folder import RunFolder, read_run

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    _show_progress()
    base = None
    if like:
        base = Config.from_dict(read_run(resolve(runs_dir, like))["config"])
        if config is not None:
            raise ConfigError("--like and --config are exclusive")
        typer.echo(f"config: that of run {like} (--like)")
    else:
        config, line = project_config(config)
        typer.echo(line)
    cfg = build_config(config, param, data, base=base)
    if max_minutes is not None:
        cfg = cfg.replace({"run.max_minutes": max_minutes})
    result = execute(cfg, runs_dir=runs_dir, notebook=notebook, promote_if_passed=promote, wait=wait,
                     like=like, engine=engine)
    alert_after_run(result.run_dir, cfg)
    monitor_after_run(runs_dir)
    t = result.manifest.get("timings", {})
    if result.status != "succeeded":
        nb = RunFolder(result.run_dir).notebook
        where = f" (executed notebook: {nb})" if nb.is_file() else ""
        typer.echo(f"run {result.run_id} {result.status.upper()}: {result.reason}{where}", err=True)
        raise typer.Exit(128 + result.signal if result.signal else
                         EXIT_TIMEOUT if result.status == "timed_out" else EXIT_FAILED)
    if result.signal:
        typer.echo(f"run {result.run_id} succeeded but stopped by signal {result.signal} before promotion", err=True)
        raise typer.Exit(128 + result.signal)
    typer.echo(f"run {result.run_id} succeeded in {t.get('total', 0):.1f} s "
               f"(data snapshot {(result.manifest.get('data') or {}).get('snapshot')})")
    data_info = result.manifest.get("data") or {}
    typer.echo(format_summary(result.metrics, cfg.eval.k, warnings=data_info.get("warnings"),
                              protocol=(data_info.get("split") or {}).get("method")))
    typer.echo("phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    typer.echo(f"report: {result.report.resolve()}")
    if result.gate is not None and not result.gate.passed:
        typer.echo(f"gate FAILED: {result.gate.reason}; not promoted", err=True)
        raise typer.Exit(EXIT_GATE)
    typer.echo(f"gate passed; {'promoted to production' if result.promoted else 'not promoted (no --promote)'}")


def show_config(
    config: Optional[Path] = config_option("Start from this TOML file."),
    param: Optional[list[str]] = param_option(),
) -> None:
    """Print the full configuration as TOML (defaults, or a file with overrides applied)."""
    typer.echo(build_config(config, param, None).to_toml(), nl=False)


def _show_progress() -> None:
    """Print the retrain's phases and epochs to stdout as they happen (logger ``recsys_lab.progress``)."""
    progress = logging.getLogger("recsys_lab.progress")
    if not any(getattr(h, "_recsys_progress", False) for h in progress.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        handler._recsys_progress = True  # type: ignore[attr-defined]
        progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
