"""Data and project commands: ``ingest`` (a warehouse snapshot), ``generate`` (a synthetic log), ``init`` (a project
folder) and ``lab`` (JupyterLab on its notebooks)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.exits import UsageError
from recsys_lab.cli.options import build_config, config_option, data_option, param_option
from recsys_lab.cli.output import print_frame

__all__ = ["ingest", "generate", "init", "lab"]


def ingest(
    config: Optional[Path] = config_option("TOML config whose [data] section to use."),
    param: Optional[list[str]] = param_option(),
    interactions: Optional[Path] = typer.Option(None, "--interactions", help="Interaction log, CSV or Parquet "
                                                "(sets data.source = files)."),
    users: Optional[Path] = typer.Option(None, "--users", help="Optional user table (CSV or Parquet)."),
    items: Optional[Path] = typer.Option(None, "--items", help="Optional item table (CSV or Parquet)."),
    user_col: Optional[str] = typer.Option(None, "--user-col", help="User id column (default user_id)."),
    item_col: Optional[str] = typer.Option(None, "--item-col", help="Item id column (default item_id)."),
    time_col: Optional[str] = typer.Option(None, "--time-col", help="Timestamp column (default ts)."),
    weight_col: Optional[str] = typer.Option(None, "--weight-col", help="Rating or implicit weight column "
                                             "(default: every interaction weighs 1)."),
    title_col: Optional[str] = typer.Option(None, "--title-col", help="Item title column in the item table."),
    data: Optional[Path] = data_option(),
) -> None:
    """Load a source, run the data guardrails and store an immutable warehouse snapshot."""
    from recsys_lab.pipeline import Retrain

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    over = {f"data.{k}": str(v) if isinstance(v, Path) else v for k, v in (
        ("interactions", interactions), ("users", users), ("items", items), ("user_col", user_col),
        ("item_col", item_col), ("time_col", time_col), ("weight_col", weight_col), ("title_col", title_col))
        if v is not None}
    if interactions is not None:
        over["data.source"] = "files"
    cfg = build_config(config, param, data).replace(over)
    job = Retrain(cfg)
    snap = job.ingest()
    info = snap.info()
    typer.echo(f"snapshot {snap.id}: {info['n_interactions']} interactions, {info['n_users']} users, "
               f"{info['n_items']} items from {info['source']}\n{snap.path}")
    print_frame(job.validation.table().drop("description"))


def generate(
    users: int = typer.Option(..., "--users", help="Number of users (each gets at least one interaction)."),
    items: int = typer.Option(..., "--items", help="Number of items."),
    interactions: int = typer.Option(..., "--interactions", help="Number of interaction rows."),
    out: Path = typer.Option(..., "--out", help="Folder for interactions.parquet and items.parquet."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same arguments, same files)."),
) -> None:
    """Write a synthetic play-count log (Zipf items, lognormal users, a year of timestamps) and print the
    [data] config that reads it."""
    import time

    from recsys_lab.data import synthetic

    t0 = time.perf_counter()
    log = synthetic.generate(users, items, interactions, seed=seed)
    paths = synthetic.write(log, out)
    typer.echo(f"# {interactions} interactions, {users} users, {items} items in {time.perf_counter() - t0:.1f} s "
               f"-> {out}")
    typer.echo(synthetic.config_snippet(paths))


def init(directory: Path = typer.Argument(..., help="Project folder to create (or complete)."),
         force: bool = typer.Option(False, "--force", help="Overwrite existing notebooks and config.toml.")) -> None:
    """Create a project folder: notebooks/, config.toml (every default), runs/, warehouse/."""
    from recsys_lab.runs.project import init_project

    for path in init_project(directory, force=force):
        typer.echo(f"created {path}")
    typer.echo(f"project ready: cd {directory} && recsys-lab retrain -c config.toml   (or: recsys-lab lab)")


def lab(port: int = typer.Option(8888, "--port", help="Port of the JupyterLab server."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the command instead of running it.")) -> None:
    """Open JupyterLab on the project's notebooks/ (./notebooks, else the checkout's) with this environment."""
    import os

    from recsys_lab.runs.project import default_notebook

    folder = default_notebook().parent
    if not (Path.cwd() / "notebooks").is_dir() and "site-packages" in folder.parts:
        raise UsageError("no notebooks/ here: create a project folder with `recsys-lab init DIR` and run lab "
                         "inside it")
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", f"--port={port}"]
    typer.echo(" ".join(cmd))
    if not dry_run:
        os.execv(sys.executable, cmd)
