"""``recsys-lab``: the command line. The only module that configures logging.

Exit codes: 0 success; 1 the run failed or crashed (its folder keeps the executed notebook); 2 bad usage,
config or reference (nothing was run); 3 the run succeeded but failed its metric gate (not promoted);
4 the run exceeded its time budget (``timed_out``); 5 another retrain holds the lock; 128 + N the run was
stopped by signal N and recorded as ``failed`` with the signal named (:data:`EXIT_TERMINATED` = 143 for SIGTERM,
130 for SIGINT / Ctrl-C), the shell's convention for a process ended by a signal.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from recsys_lab.config import Config, load_config, parse_value
from recsys_lab.errors import ConfigError, RecsysLabError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="recsys_lab: train, index, evaluate and report recommender models from notebooks.")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3
EXIT_TIMEOUT = 4
EXIT_LOCKED = 5
EXIT_TERMINATED = 143
"""128 + SIGTERM: the run was stopped by SIGTERM (128 + N for signal N)."""

runs_app = typer.Typer(no_args_is_help=True, help="The run registry: list, show, compare, promote, gc.")
app.add_typer(runs_app, name="runs")

RUNS_DIR = typer.Option(Path("runs"), "--runs-dir", help="Parent folder of the run folders.")


def _print_frame(df) -> None:  # noqa: ANN001
    import polars as pl

    with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=240, fmt_str_lengths=60,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=4):
        typer.echo(str(df))


def _fail(message: str, code: int) -> None:
    """Print the error's first line (every failed check is on it) and exit with ``code``."""
    typer.echo(f"error: {str(message).strip().splitlines()[0] if str(message).strip() else 'unknown'}", err=True)
    raise typer.Exit(code)


def _build_config(config: Optional[Path], params: Optional[list[str]], data: Optional[Path],
                  base: Optional[Config] = None) -> Config:
    overrides = {}
    for pair in params or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME VALUE or NAME=VALUE, got {pair!r}", parameter=pair)
        overrides[name] = parse_value(value)
    if data is not None:
        overrides["data.path"] = str(data)
    if base is not None:
        return base.replace(overrides)
    return load_config(config, overrides)


@app.command()
def retrain(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config file (see `recsys-lab config`)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE",
                                              help="Override one parameter, e.g. -p model.epochs 20 (repeatable)."),
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip (offline machines); "
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
    from recsys_lab.report.text import format_summary
    from recsys_lab.errors import RunFailedError
    from recsys_lab.runs.execute import execute
    from recsys_lab.runs.lock import LockHeldError
    from recsys_lab.runs.registry import resolve
    from recsys_lab.store.folder import RunFolder, read_run

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    _show_progress()
    try:
        base = None
        if like:
            base = Config.from_dict(read_run(resolve(runs_dir, like))["config"])
            if config is not None:
                raise ConfigError("--like and --config are exclusive")
        cfg = _build_config(config, param, data, base=base)
        if max_minutes is not None:
            cfg = cfg.replace({"run.max_minutes": max_minutes})
        result = execute(cfg, runs_dir=runs_dir, notebook=notebook, promote_if_passed=promote, wait=wait,
                         like=like, engine=engine)
    except LockHeldError as exc:
        _fail(str(exc), EXIT_LOCKED)
    except RunFailedError as exc:  # the run could not even be recorded (e.g. disk full)
        _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        _fail(f"{exc.filename or 'runs'}: {exc.strerror or exc}", EXIT_FAILED)
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)
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


@app.command("config")
def show_config(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="Start from this TOML file."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE", help="Override."),
) -> None:
    """Print the full configuration as TOML (defaults, or a file with overrides applied)."""
    try:
        typer.echo(_build_config(config, param, None).to_toml(), nl=False)
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)


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


def _guard(fn):  # noqa: ANN001, ANN202
    """Run ``fn`` turning recsys_lab errors into a one-line message and exit code 2."""
    try:
        return fn()
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)


@runs_app.command("list")
def runs_list(
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status "
                                         "(running, succeeded, failed, timed_out, crashed)."),
    limit: int = typer.Option(20, "--limit", help="At most this many runs (newest first)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Runs, newest first, with key metrics; the production run is marked."""
    import polars as pl

    from recsys_lab.runs.registry import table

    t = _guard(lambda: table(runs_dir))
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
    _print_frame(shown)


@runs_app.command("show")
def runs_show(ref: str = typer.Argument(..., help="Run id, unique prefix, 'production' or 'latest'."),
              runs_dir: Path = RUNS_DIR) -> None:
    """Config, metrics, timings, gate outcome and artifact paths of one run."""
    from recsys_lab.runs.registry import production_id, resolve
    from recsys_lab.store.folder import RunFolder, read_run

    run_dir = _guard(lambda: resolve(runs_dir, ref))
    m = read_run(run_dir)
    prod = " (production)" if production_id(runs_dir) == run_dir.name else ""
    typer.echo(f"run {m['run_id']}{prod}: {m['status']}  started {m['started_at']}  ended {m.get('ended_at')}")
    if m.get("reason"):
        typer.echo(f"reason: {m['reason']}")
    typer.echo(f"git {m['git'].get('commit')}{' (dirty)' if m['git'].get('dirty') else ''}; data snapshot "
               f"{(m.get('data') or {}).get('snapshot')}")
    metrics_path = RunFolder(run_dir).metrics
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text())
        typer.echo("metrics:\n" + "\n".join(f"  {k:<36}{v:.4f}" if isinstance(v, float) else f"  {k:<36}{v}"
                                             for k, v in metrics.items()))
    typer.echo("timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in (m.get("timings") or {}).items()))
    gate = m.get("gate")
    if gate:
        typer.echo(f"gate: {'passed' if gate['passed'] else 'FAILED'}; promoted: {m.get('promoted')}")
        for c in gate["checks"]:
            typer.echo(f"  [{'ok' if c['passed'] else 'FAIL'}] {c['message']}")
    typer.echo("config:\n" + Config.from_dict(m["config"]).to_toml())
    typer.echo("artifacts:")
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("."):
            typer.echo(f"  {p} ({p.stat().st_size} bytes)")


@runs_app.command("compare")
def runs_compare(a: str = typer.Argument(..., help="Run A (id, prefix, 'production', 'latest')."),
                 b: str = typer.Argument(..., help="Run B."), runs_dir: Path = RUNS_DIR) -> None:
    """Metric deltas (B - A, absolute and relative), parameter differences and data snapshot change."""
    from recsys_lab.runs.registry import compare

    c = _guard(lambda: compare(runs_dir, a, b))
    typer.echo(f"A = {c['a']}\nB = {c['b']}")
    typer.echo("data: " + ("same snapshot " + str(c["snapshots"][0]) if c["same_data"] else
                           f"DIFFERENT snapshots {c['snapshots'][0]} -> {c['snapshots'][1]}"))
    if c["paired"]:
        pm = c["paired_metrics"]
        typer.echo(f"paired over the same {pm['n_users'].max() if pm.height else 0} users ({c['pairing']}): "
                   "delta = B - A with its 95% bootstrap interval")
        _print_frame(pm)
    else:
        typer.echo(f"NOT paired ({c['pairing']}): differences below carry no interval; compare each run's own "
                   "intervals (runs show)")
    _print_frame(c["metrics"])
    if c["params"].height:
        typer.echo("parameters that differ:")
        _print_frame(c["params"])
    else:
        typer.echo("parameters: identical")


@runs_app.command("promote")
def runs_promote(ref: str = typer.Argument(..., help="Run id or prefix."),
                 force: bool = typer.Option(False, "--force", help="Promote even a failed or gate-failed run."),
                 runs_dir: Path = RUNS_DIR) -> None:
    """Make a run production (atomic replace of runs/PRODUCTION)."""
    from recsys_lab.runs.registry import promote

    run_id = _guard(lambda: promote(runs_dir, ref, force=force))
    typer.echo(f"production is now {run_id}")


@runs_app.command("gc")
def runs_gc(keep: int = typer.Option(..., "--keep", help="How many newest runs to keep."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
            runs_dir: Path = RUNS_DIR) -> None:
    """Remove old runs, never the production run nor a live one."""
    from recsys_lab.runs.registry import gc

    removed = _guard(lambda: gc(runs_dir, keep, dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {len(removed)} run(s)" + "".join(f"\n  {r}" for r in removed))


def _noted(fn):  # noqa: ANN001, ANN202
    """:func:`_guard`, printing recsys_lab warnings as one-line notes on stderr."""
    import warnings

    from recsys_lab.errors import RecsysLabWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RecsysLabWarning)
        out = _guard(fn)
    for w in caught:
        if issubclass(w.category, RecsysLabWarning):
            typer.echo(f"note: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return out


@app.command()
def recommend(
    user: Optional[str] = typer.Option(None, "--user", help="External user id (integer or text, as in the data)."),
    items: Optional[str] = typer.Option(None, "--items", help="Taste onboarding: comma-separated item ids a new "
                                        "user picked (e.g. 50,172,181); recommendations by fold-in."),
    run: Optional[str] = typer.Option(None, "--run", help="Run (id, prefix, 'production', 'latest'); default "
                                      "'latest' with --user, 'production' with --items."),
    vs: Optional[str] = typer.Option(None, "--vs", help="Second run to compare with, e.g. production."),
    k: int = typer.Option(10, "-k", help="How many items."),
    history: int = typer.Option(10, "--history", help="How many recent interactions to show."),
    version: str = typer.Option("latest", "--version", help="Update version to serve (a folder name under "
                                "artifacts/updates), 'latest', or 'none' to ignore updates."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """A user's recent history and a run's top-k (optionally side by side with another run), or top-k for a
    new user from a few picked items. The output says which serving path answered (model, update, fold-in,
    popularity)."""
    from recsys_lab.serving.recommend import compare_recommendations, recommend as rec, recommend_for_items, user_history

    if (user is None) == (items is None):
        _fail("give exactly one of --user ID or --items ID,ID,...", EXIT_USAGE)
    if items is not None:
        run = run or "production"
        picks = [x.strip() for x in items.split(",") if x.strip()]
        df = _noted(lambda: recommend_for_items(runs_dir, picks, run=run, k=k))
        typer.echo(f"top-{k} from {run} for a new user who picked {', '.join(picks)} (path: {df['path'][0]})")
        _print_frame(df)
        return
    run = run or "latest"
    typer.echo(f"user {user}: last {history} interactions before the training cut-off")
    _print_frame(_guard(lambda: user_history(runs_dir, user, run=run, n=history)))
    if vs:
        typer.echo(f"top-{k}: a = {run}, b = {vs}")
        _print_frame(_noted(lambda: compare_recommendations(runs_dir, user, run=run, vs=vs, k=k)))
    else:
        df = _noted(lambda: rec(runs_dir, user, run=run, k=k, version=None if version == "none" else version))
        path = df["path"][0] if df.height else "none"
        typer.echo(f"top-{k} from {run} (path: {path})")
        _print_frame(df)


@app.command()
def update(
    interactions: Path = typer.Option(..., "--interactions", help="New interactions, CSV or Parquet with the "
                                      "run's column mapping (MovieLens: user_id,item_id,rating,timestamp)."),
    run: str = typer.Option("production", "--run", help="Run whose user vectors to update."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Fold new interactions into a run's user vectors without retraining (a new version under
    artifacts/updates/); `recommend` serves the latest version."""
    from recsys_lab.serving.recommend import update as do_update

    man = _noted(lambda: do_update(runs_dir, interactions, run=run))
    typer.echo(f"update {man['version']} of run {man['run_id']}: {man['rows_read']} rows read, "
               f"{man['rows_used']} used, {man['unknown_items_skipped']} skipped (unknown items"
               f"{': ' + ', '.join(man['unknown_item_ids']) if man['unknown_item_ids'] else ''}); "
               f"{man['users_updated']} users updated ({man['new_users']} new), {man['users_in_version']} in version")


@app.command()
def ingest(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config whose [data] section to use."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE", help="Override."),
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
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip."),
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
    try:
        cfg = _build_config(config, param, data).replace(over)
        job = Retrain(cfg)
        snap = job.ingest()
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE if isinstance(exc, ConfigError) else EXIT_FAILED)
    info = snap.info()
    typer.echo(f"snapshot {snap.id}: {info['n_interactions']} interactions, {info['n_users']} users, "
               f"{info['n_items']} items from {info['source']}\n{snap.path}")
    _print_frame(job.validation.table().drop("description"))


@app.command()
def init(directory: Path = typer.Argument(..., help="Project folder to create (or complete)."),
         force: bool = typer.Option(False, "--force", help="Overwrite existing notebooks and config.toml.")) -> None:
    """Create a project folder: notebooks/, config.toml (every default), runs/, warehouse/."""
    from recsys_lab.runs.project import init_project

    created = _guard(lambda: init_project(directory, force=force))
    for path in created:
        typer.echo(f"created {path}")
    typer.echo(f"project ready: cd {directory} && recsys-lab retrain -c config.toml   (or: recsys-lab lab)")


@app.command()
def lab(port: int = typer.Option(8888, "--port", help="Port of the JupyterLab server."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Print the command instead of running it.")) -> None:
    """Open JupyterLab on the project's notebooks/ (./notebooks, else the checkout's) with this environment."""
    import os

    from recsys_lab.runs.project import default_notebook

    folder = default_notebook().parent
    if not (Path.cwd() / "notebooks").is_dir() and "site-packages" in folder.parts:
        _fail("no notebooks/ here: create a project folder with `recsys-lab init DIR` and run lab inside it",
              EXIT_USAGE)
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", f"--port={port}"]
    typer.echo(" ".join(cmd))
    if not dry_run:
        os.execv(sys.executable, cmd)


@app.command()
def bench(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config (data and model settings)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE", help="Override."),
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip."),
    repeat: int = typer.Option(3, "--repeat", help="Timed repetitions (best is reported)."),
    large_items: int = typer.Option(100_000, "--large-items", help="Synthetic catalogue size for ANN at scale "
                                    "(0 skips it)."),
    gemm_size: int = typer.Option(50_000, "--gemm-size", help="Users = items of the top-k vs bare GEMM "
                                  "comparison (0 skips it)."),
    ann_bench: bool = typer.Option(False, "--ann", help="Only candidate generation: on five test sets (LightFM of "
                                   "two generator shapes, ALS, MovieLens, a log grown from it), the default index "
                                   "vs exact top-k vs hnswlib ip at matched recall, and "
                                   "the exact/index crossover."),
    ann_items: str = typer.Option("100000", "--ann-items", help="--ann: catalogue sizes, comma-separated."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="--ann: where trained vectors are cached "
                                             "(default: a folder in the system temp dir)."),
    as_json: bool = typer.Option(False, "--json", help="Also print the figures as JSON."),
    foldin: bool = typer.Option(False, "--foldin", help="Fold-in benchmarks instead: onboarding latency "
                                "(fold-in + top-10, p50/p99) and update throughput (users/s)."),
) -> None:
    """Benchmarks against baselines measured in the same run (top-k vs GEMM, metrics, ANN vs exact; or fold-in)."""
    from recsys_lab.tools.ann_bench import ann_benchmark, ann_crossover
    from recsys_lab.tools.ann_sets import ann_sizes, default_cache_dir, lightfm_vectors
    from recsys_lab.tools.bench import run, run_foldin

    try:
        if foldin:
            figures = run_foldin(_build_config(config, param, data), large_items=large_items, echo=typer.echo)
        elif ann_bench:
            try:
                sizes = tuple(ann_sizes(int(n)) for n in ann_items.split(","))
            except ValueError:
                raise ConfigError(f"--ann-items: expected comma-separated integers, got {ann_items!r}",
                                  parameter="--ann-items") from None
            figures = ann_benchmark(sizes, repeat=repeat, cache_dir=cache_dir, echo=typer.echo)
            users, items = lightfm_vectors(*sizes[0], cache_dir=cache_dir or default_cache_dir())
            figures.update(ann_crossover(users, items, sizes=tuple(n for n in (5_000, 10_000, 20_000, 50_000, 100_000)
                                                                   if n <= len(items)), echo=typer.echo))
        else:
            figures = run(_build_config(config, param, data), repeat=repeat, large_items=large_items,
                          gemm_size=gemm_size, echo=typer.echo)
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))


@app.command()
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
    try:
        log = synthetic.generate(users, items, interactions, seed=seed)
        paths = synthetic.write(log, out)
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)
    typer.echo(f"# {interactions} interactions, {users} users, {items} items in {time.perf_counter() - t0:.1f} s "
               f"-> {out}")
    typer.echo(synthetic.config_snippet(paths))


study_app = typer.Typer(no_args_is_help=True, help="Evaluation studies behind the defaults (protocols, gate noise).")
app.add_typer(study_app, name="study")


@study_app.command("protocols")
def study_protocols(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config (data, model, baselines)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE", help="Override."),
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip."),
) -> None:
    """Model and every baseline under each split protocol, NDCG@k with 95% intervals and users."""
    from recsys_lab.tools.study import protocols

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _guard(lambda: protocols(_build_config(config, param, data), echo=typer.echo))


@study_app.command("gate-noise")
def study_gate_noise(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config (data and model)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE", help="Override."),
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip."),
    runs: int = typer.Option(6, "--runs", help="Equivalent retrains (seeds 1..N) per protocol."),
) -> None:
    """How often equivalent retrains fail the regression gate: mean-drop rule vs the paired rule."""
    from recsys_lab.tools.study import gate_noise

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    _guard(lambda: gate_noise(_build_config(config, param, data), runs=runs, echo=typer.echo))


# -- embeddings as a product: similar items, personas -----------------------------------------------------------
@app.command()
def similar(
    item: str = typer.Option(..., "--item", help="External item id, e.g. 50."),
    k: int = typer.Option(10, "-k", help="How many neighbours."),
    run: str = typer.Option("production", "--run", help="Run (id, prefix, 'production', 'latest')."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """The k items most similar to an item, with titles: LightFM's score e_i.e_j + b_j for a user who is the
    item (popularity-aware, not cosine), through the run's saved index when it has one, exact otherwise."""
    from recsys_lab.serving.recommend import similar as similar_items

    df = _noted(lambda: similar_items(runs_dir, item, k=k, run=run))
    typer.echo(f"{k} items most similar to item {item} in {run} (e_i.e_j + b_j; path: {df['path'][0]})")
    _print_frame(df)


@app.command()
def personas(
    file: Optional[Path] = typer.Option(None, "--file", help="Persona file (TOML); default the shipped MovieLens "
                                        "personas."),
    run: str = typer.Option("latest", "--run", help="Run (id, prefix, 'production', 'latest')."),
    vs: Optional[str] = typer.Option(None, "--vs", help="Second run to compare with, e.g. production."),
    k: int = typer.Option(10, "-k", help="How many items per persona."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Every persona's top-k from a run (fold-in of its items), optionally next to another run's with moves
    (new, dropped, up N, down N, =)."""
    from recsys_lab.report.tables import persona_table
    from recsys_lab.serving.recommend import persona_lists

    mine = _noted(lambda: persona_lists(runs_dir, run=run, file=file, k=k))
    theirs = _noted(lambda: persona_lists(runs_dir, run=vs, file=file, k=k)) if vs else None
    table = persona_table(mine, theirs)
    for name, entry in mine.items():
        typer.echo(f"\n{name}: {entry['description']} ({len(entry['items'])} items"
                   + (f"; unknown: {', '.join(map(str, entry['unknown']))}" if entry["unknown"] else "") + ")")
        part = table.filter(table["persona"] == name).drop("persona")
        _print_frame(part if vs else part.drop("rank_vs", "move"))


def _merge_pairs(argv: list[str]) -> list[str]:
    """Rewrite ``-p NAME VALUE`` as ``-p NAME=VALUE`` (typer has no options taking pairs); both forms work."""
    out, i = [], 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-p", "--param") and i + 1 < len(argv) and "=" not in argv[i + 1]:
            if i + 2 >= len(argv):
                _fail(f"{tok} takes NAME VALUE, got only {argv[i + 1]!r}", EXIT_USAGE)
            out += [tok, f"{argv[i + 1]}={argv[i + 2]}"]
            i += 3
            continue
        out.append(tok)
        i += 1
    return out


def _skip_slow_iri_checker() -> None:
    """Don't let jsonschema (via nbformat) import ``rfc3987_syntax``: it builds ~35 Lark parsers at import (1-2 s
    per command on this machine) for the ``iri`` formats no notebook schema uses; jsonschema skips a checker whose
    import fails (python-jsonschema/jsonschema#1428). Only in the CLI's own process."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry point; returns the exit code."""
    _skip_slow_iri_checker()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = _merge_pairs(argv)
        typer.main.get_command(app).main(args=argv, prog_name="recsys-lab", standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0)
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
