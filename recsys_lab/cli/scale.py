"""``recsys-lab score`` (every user's top-k on Ray Data) and ``sweep`` (a search on Ray Tune), both in
:mod:`recsys_lab.scale`. Ray runs locally with this machine's CPUs unless ``--address`` or ``$RAY_ADDRESS`` names a
cluster. Ray failing to start is one line on stderr and exit code 1; a sweep stopped by SIGTERM exits 143 with
what finished recorded."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer

from recsys_lab.cli.exits import EXIT_FAILED
from recsys_lab.cli.options import RUNS_DIR, run_option

__all__ = ["score", "sweep"]

ADDRESS = typer.Option(None, "--address", help="Ray cluster (ray://host:10001 or auto); default $RAY_ADDRESS, "
                       "else a local Ray with this machine's CPUs.")
"""``--address``: where Ray runs."""


@contextmanager
def _ray_start_fails_with_exit_1() -> Iterator[None]:
    from recsys_lab.scale.cluster import RayStartError

    try:
        yield
    except RayStartError as exc:
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise typer.Exit(EXIT_FAILED) from exc


def score(
    out: Path = typer.Option(..., "--out", help="Parquet file: user_id, item_id (list, best first), score (list)."),
    run: str = run_option("production", "Run to score (id, prefix, 'production', 'latest')."),
    k: int = typer.Option(100, "-k", help="Items per user."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Scoring workers (default: Ray's CPUs)."),
    verify: int = typer.Option(0, "--verify", help="Then re-compute the exact single-process top-k of this many "
                               "sampled users and compare (recorded in <out>.verify.json; exit 1 on a mismatch)."),
    verify_seed: int = typer.Option(0, "--verify-seed", help="Seed of the --verify sample."),
    no_ray: bool = typer.Option(False, "--no-ray", help="Score in this process without Ray (same file; on one "
                                "machine the faster path)."),
    address: Optional[str] = ADDRESS,
    start_timeout: float = typer.Option(120.0, "--start-timeout", help="Seconds Ray's start-up may take."),
    runs_dir: Path = RUNS_DIR,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress."),
) -> None:
    """Every user's top-k of a run (training items excluded) into one Parquet file, on Ray Data."""
    from recsys_lab._fs import atomic_write_json
    from recsys_lab.runs.registry import resolve
    from recsys_lab.scale.cluster import RayOptions
    from recsys_lab.scale.score import score_local, score_users, verify_sample

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    run_dir = resolve(runs_dir, run)
    if no_ray:
        r = score_local(run_dir, out, k=k)
        where = f"{r.workers} threads, no Ray"
    else:
        with _ray_start_fails_with_exit_1():
            r = score_users(run_dir, out, k=k, workers=workers,
                            options=RayOptions(address=address, start_timeout_s=start_timeout))
        where = f"{r.workers} workers; Ray start-up {r.startup_seconds:.1f} s"
    typer.echo(f"{r.rows} users' top-{k} of run {run_dir.name} -> {r.path} in {r.seconds:.1f} s "
               f"({r.rows_per_second:,.0f} users/s, {where})")
    if verify > 0:
        v = verify_sample(run_dir, out, verify, seed=verify_seed)
        record = out.with_name(out.stem + ".verify.json")
        atomic_write_json(record, {**v.to_dict(), "run": run_dir.name, "file": str(out), "seed": verify_seed})
        speed = f"{v.users / v.seconds:,.0f} users/s" if v.seconds > 0 else "-"
        typer.echo(f"verified {v.users} sampled users against the exact single-process top-{v.k}: "
                   f"{v.share_identical:.6f} identical, {v.share_equal:.6f} equal up to ties "
                   f"({v.missing} missing, max |score diff| {v.max_score_diff:.2g}; exact top-k {speed}) -> {record}")
        if v.equal < v.users:
            typer.echo(f"error: {v.users - v.equal} of {v.users} sampled users differ from the exact top-k", err=True)
            raise typer.Exit(EXIT_FAILED)


def sweep(
    config: Path = typer.Option(..., "--config", "-c", help="Sweep file (TOML; see recsys_lab.scale.space)."),
    address: Optional[str] = ADDRESS,
    no_rerun: bool = typer.Option(False, "--no-rerun", help="Search only: do not re-run the best trials."),
    promote_best: bool = typer.Option(False, "--promote-best", help="The winner's re-run retrain is promoted if "
                                      "it succeeds and passes the gate (as retrain --promote)."),
    runs_dir: Path = RUNS_DIR,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log progress."),
) -> None:
    """A search over config keys on Ray Tune (ASHA on per-epoch validation); the best trials re-run as retrains
    and compared with the base config, paired, with intervals. Results in runs/sweeps/<id>/."""
    import dataclasses

    from recsys_lab.scale.space import load_sweep
    from recsys_lab.scale.sweep import run_sweep

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    spec = load_sweep(config)  # a bad space fails here, before Ray starts
    if address:
        spec = dataclasses.replace(spec, ray=dataclasses.replace(spec.ray, address=address))
    with _ray_start_fails_with_exit_1():
        result = run_sweep(spec, runs_dir=runs_dir, rerun=not no_rerun, promote_best=promote_best)
    t = result.trials
    if result.signal:
        typer.echo(f"sweep {result.folder.name} stopped by signal {result.signal}: {t.height} trials recorded in "
                   f"{result.folder}", err=True)
        raise typer.Exit(128 + result.signal)
    counts = {s: int((t["status"] == s).sum()) for s in ("finished", "stopped", "failed")}
    typer.echo(f"sweep {result.folder.name}: {t.height} trials ({counts['finished']} finished, "
               f"{counts['stopped']} stopped early, {counts['failed']} failed) in {result.timings['search']:.1f} s "
               f"({int(t['epochs'].sum())} epochs; trials' own work {result.timings['trial_work']:.1f} s, Ray's "
               f"{result.timings['ray_overhead_per_trial']:.2f} CPU-s per trial)")
    if result.winner is None:
        typer.echo("no trial finished: no winner", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"winner: trial {result.winner['trial']} {result.winner['overrides']} "
               f"(validation NDCG {result.winner['validation_ndcg']:.4f})")
    for entry in result.comparison:
        vs = entry.get("vs_base")
        if vs:
            typer.echo(f"  run {entry['run']} vs base run {entry['base_run']}: {vs['metric']} {vs['b']:.4f} vs "
                       f"{vs['a']:.4f}, delta {vs['delta']:+.4f} [{vs['ci_low']:+.4f}, {vs['ci_high']:+.4f}]"
                       f"{' significant' if vs['significant'] else ''}")
        else:
            typer.echo(f"  run {entry['run']} ({entry['status']}) vs base {entry['base_run']} "
                       f"({entry['base_status']}): no comparison")
        promotion = entry.get("promotion")
        if promotion:
            typer.echo(f"  run {entry['run']}: " + ("promoted to production" if promotion["promoted"] else
                                                   f"not promoted ({promotion['reason'] or 'gate failed'})"))
    typer.echo(f"results: {result.folder}" + (f" (report: {result.folder / 'report.html'})"
                                               if (result.folder / "report.html").is_file() else ""))
