"""``recsys-lab runs``: the run registry (list, show, compare, promote, gc)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.options import RUNS_DIR, json_option
from recsys_lab.cli.output import print_frame
from recsys_lab.config import Config

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="The run registry: list, show, compare, promote, gc.")


@app.command("list")
def runs_list(
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status "
                                         "(running, succeeded, failed, timed_out, crashed)."),
    limit: int = typer.Option(20, "--limit", help="At most this many runs (newest first)."),
    as_json: bool = json_option("JSON lines instead of a table."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Runs, newest first, with key metrics; the production run is marked."""
    import polars as pl

    from recsys_lab.runs.registry import recover, table

    recover(runs_dir)
    t = table(runs_dir)
    if status:
        t = t.filter(pl.col("status") == status)
    t = t.head(limit)
    if as_json:
        for row in t.to_dicts():
            typer.echo(json.dumps(row, default=str))
        return
    shown = t.select(pl.when(pl.col("production")).then(pl.lit("*")).otherwise(pl.lit("")).alias("prod"),
                     "run_id", "status", "started_at", pl.col("duration_s").round(1), "snapshot", "gate_passed",
                     "k", "ndcg@k", "recall@k", "auc", "ann.recall@k")
    print_frame(shown)


@app.command("show")
def runs_show(ref: str = typer.Argument(..., help="Run id, unique prefix, 'production' or 'latest'."),
              runs_dir: Path = RUNS_DIR) -> None:
    """Config, metrics, timings, gate outcome and artifact paths of one run."""
    from recsys_lab.runs.registry import recover, show

    recover(runs_dir)
    shown = show(runs_dir, ref)
    run_dir, m, metrics = shown["run_dir"], shown["manifest"], shown["metrics"]
    prod = " (production)" if shown["production"] else ""
    typer.echo(f"run {m.get('run_id')}{prod}: {m.get('status')}  started {m.get('started_at')}  "
               f"ended {m.get('ended_at')}")
    if m.get("reason"):
        typer.echo(f"reason: {m['reason']}")
    git = m.get("git") if isinstance(m.get("git"), dict) else {}
    typer.echo(f"git {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}; data snapshot "
               f"{(m.get('data') or {}).get('snapshot')}")
    if metrics is not None:
        typer.echo("metrics:\n" + "\n".join(f"  {k:<36}{v:.4f}" if isinstance(v, float) else f"  {k:<36}{v}"
                                             for k, v in metrics.items()))
    typer.echo("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in (m.get("timings") or {}).items()))
    gate = m.get("gate")
    if gate:
        typer.echo(f"gate: {'passed' if gate.get('passed') else 'FAILED'}; promoted: {m.get('promoted')}")
        for c in gate.get("checks") or []:
            typer.echo(f"  [{'ok' if c.get('passed') else 'FAIL'}] {c.get('message')}")
    promotion = m.get("promotion")
    if isinstance(promotion, dict) and (promotion.get("requested") or promotion.get("done")):
        state = "pending" if promotion.get("pending") else "done" if promotion.get("done") else "not done"
        typer.echo(f"promotion: {state}" + (f" ({promotion['reason']})" if promotion.get("reason") else ""))
    typer.echo("config:\n" + (Config.from_dict(m["config"]).to_toml() if m.get("config") else "(not recorded)\n"))
    typer.echo("artifacts:")
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            typer.echo(f"  {p} ({p.stat().st_size} bytes)")


@app.command("compare")
def runs_compare(a: str = typer.Argument(..., help="Run A (id, prefix, 'production', 'latest')."),
                 b: str = typer.Argument(..., help="Run B."), runs_dir: Path = RUNS_DIR) -> None:
    """Metric deltas (B - A, absolute and relative), parameter differences and data snapshot change."""
    from recsys_lab.runs.registry import compare

    c = compare(runs_dir, a, b)
    typer.echo(f"A = {c['a']}\nB = {c['b']}")
    typer.echo("data: " + ("same snapshot " + str(c["snapshots"][0]) if c["same_data"] else
                           f"DIFFERENT snapshots {c['snapshots'][0]} -> {c['snapshots'][1]}"))
    if c["paired"]:
        pm = c["paired_metrics"]
        typer.echo(f"paired over the same {pm['n_users'].max() if pm.height else 0} users ({c['pairing']}): "
                   "delta = B - A with its 95% bootstrap interval")
        print_frame(pm)
    else:
        typer.echo(f"NOT paired ({c['pairing']}): differences below carry no interval; compare each run's own "
                   "intervals (runs show)")
    print_frame(c["metrics"])
    if c["params"].height:
        typer.echo("parameters that differ:")
        print_frame(c["params"])
    else:
        typer.echo("parameters: identical")


@app.command("promote")
def runs_promote(ref: str = typer.Argument(..., help="Run id or prefix."),
                 force: bool = typer.Option(False, "--force", help="Promote even a failed or gate-failed run."),
                 runs_dir: Path = RUNS_DIR) -> None:
    """Make a run production (atomic replace of runs/PRODUCTION, recorded in the run's run.json)."""
    from recsys_lab.runs.registry import promote, recover

    recover(runs_dir)
    typer.echo(f"production is now {promote(runs_dir, ref, force=force)}")


@app.command("gc")
def runs_gc(keep: int = typer.Option(..., "--keep", help="How many newest runs to keep."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
            runs_dir: Path = RUNS_DIR) -> None:
    """Remove old runs, never the production run nor a live one."""
    from recsys_lab.runs.retention import gc

    removed = gc(runs_dir, keep, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(removed)} run(s)" + "".join(f"\n  {r}" for r in removed))
