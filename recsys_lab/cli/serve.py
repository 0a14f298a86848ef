"""Serving from a run's saved vectors: ``recommend``, ``update`` (fold-in versions), ``similar``, ``personas``, and
``serve`` (the HTTP service, :mod:`recsys_lab.serving.app`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.exits import UsageError
from recsys_lab.cli.options import RUNS_DIR, build_config, config_option, k_option, param_option, run_option
from recsys_lab.cli.output import noted, print_frame

__all__ = ["recommend", "update", "similar", "personas", "serve"]

VS = typer.Option(None, "--vs", help="Second run to compare with, e.g. production.")
"""``--vs REF``: a second run shown next to the first."""


def recommend(
    user: Optional[str] = typer.Option(None, "--user", help="External user id (integer or text, as in the data)."),
    items: Optional[str] = typer.Option(None, "--items", help="Taste onboarding: comma-separated item ids a new "
                                        "user picked (e.g. 50,172,181); recommendations by fold-in."),
    run: str = run_option("latest", "Run (id, prefix, 'production', 'latest': the newest run that succeeded "
                                    "and passed its gate, 'latest-any')."),
    vs: Optional[str] = VS,
    k: int = k_option("How many items."),
    history: int = typer.Option(10, "--history", help="How many recent interactions to show."),
    version: str = typer.Option("latest", "--version", help="Update version to serve (a folder name under "
                                "artifacts/updates), 'latest', or 'none' to ignore updates."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """A user's recent history and a run's top-k (optionally side by side with another run), or top-k for a
    new user from a few picked items. The output says which serving path answered (model, update, fold-in,
    popularity)."""
    from recsys_lab.serving import compare_recommendations, recommend as rec, recommend_for_items, user_history

    if (user is None) == (items is None):
        raise UsageError("give exactly one of --user ID or --items ID,ID,...")
    if items is not None:
        picks = [x.strip() for x in items.split(",") if x.strip()]
        df = noted(lambda: recommend_for_items(runs_dir, picks, run=run, k=k))
        typer.echo(f"top-{k} from {run} for a new user who picked {', '.join(picks)} (path: {df['path'][0]})")
        print_frame(df)
        return
    typer.echo(f"user {user}: last {history} interactions before the training cut-off")
    print_frame(user_history(runs_dir, user, run=run, n=history))
    if vs:
        typer.echo(f"top-{k}: a = {run}, b = {vs}")
        print_frame(noted(lambda: compare_recommendations(runs_dir, user, run=run, vs=vs, k=k)))
    else:
        df = noted(lambda: rec(runs_dir, user, run=run, k=k, version=None if version == "none" else version))
        path = df["path"][0] if df.height else "none"
        typer.echo(f"top-{k} from {run} (path: {path})")
        print_frame(df)


def update(
    interactions: Path = typer.Option(..., "--interactions", help="New interactions, CSV or Parquet with the "
                                      "run's column mapping (MovieLens: user_id,item_id,rating,timestamp)."),
    run: str = run_option("latest", "Run whose user vectors to update (default 'latest', the run `recommend` "
                                    "serves)."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Fold new interactions into a run's user vectors without retraining (a new version under
    artifacts/updates/); `recommend` serves the latest version."""
    from recsys_lab.serving import update as do_update

    man = noted(lambda: do_update(runs_dir, interactions, run=run))
    typer.echo(f"update {man['version']} of run {man['run_id']}: {man['rows_read']} rows read, "
               f"{man['rows_used']} used, {man['unknown_items_skipped']} skipped (unknown items"
               f"{': ' + ', '.join(man['unknown_item_ids']) if man['unknown_item_ids'] else ''}); "
               f"{man['users_updated']} users updated ({man['new_users']} new), {man['users_in_version']} in version")


def similar(
    item: str = typer.Option(..., "--item", help="External item id, e.g. 50."),
    k: int = k_option("How many neighbours."),
    run: str = run_option("latest", "Run (id, prefix, 'production', 'latest', 'latest-any')."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """The k items most similar to an item, with titles: LightFM's score e_i.e_j + b_j for a user who is the
    item (popularity-aware, not cosine), through the run's saved index when it has one, exact otherwise."""
    from recsys_lab.serving import similar as similar_items

    df = noted(lambda: similar_items(runs_dir, item, k=k, run=run))
    typer.echo(f"{k} items most similar to item {item} in {run} (e_i.e_j + b_j; path: {df['path'][0]})")
    print_frame(df)


def personas(
    file: Optional[Path] = typer.Option(None, "--file", help="Persona file (TOML); default the shipped MovieLens "
                                        "personas."),
    run: str = run_option("latest", "Run (id, prefix, 'production', 'latest', 'latest-any')."),
    vs: Optional[str] = VS,
    k: int = k_option("How many items per persona."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """Every persona's top-k from a run (fold-in of its items), optionally next to another run's with moves
    (new, dropped, up N, down N, =)."""
    from recsys_lab.report.tables import persona_table
    from recsys_lab.serving import persona_lists

    mine = noted(lambda: persona_lists(runs_dir, run=run, file=file, k=k))
    theirs = noted(lambda: persona_lists(runs_dir, run=vs, file=file, k=k)) if vs else None
    table = persona_table(mine, theirs)
    for name, entry in mine.items():
        typer.echo(f"\n{name}: {entry['description']} ({len(entry['items'])} items"
                   + (f"; unknown: {', '.join(map(str, entry['unknown']))}" if entry["unknown"] else "") + ")")
        part = table.filter(table["persona"] == name).drop("persona")
        print_frame(part if vs else part.drop("rank_vs", "move"))


def serve(
    run: str = run_option("production", "Run to serve: 'production' (default) follows promotions; an id or "
                                        "'latest' serves that run only."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to bind (default serve.host: 127.0.0.1, this "
                                       "machine only)."),
    port: Optional[int] = typer.Option(None, "--port", help="TCP port (default serve.port: 8000)."),
    config: Optional[Path] = config_option("TOML config (its [serve] section)."),
    param: Optional[list[str]] = param_option("Override, e.g. -p serve.update_seconds 10."),
    runs_dir: Path = RUNS_DIR,
) -> None:
    """The scoring service over HTTP: recommendations, similar items, events (folded every serve.update_seconds),
    /health, /metrics and the comparison page at /. Follows runs/PRODUCTION. POST /events needs a token when
    serve.token or RECSYS_LAB_SERVE_TOKEN is set."""
    import logging
    from dataclasses import replace

    from recsys_lab.serving.app import serve as run_service

    cfg = build_config(config, param, None).serve
    overrides = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    cfg = replace(cfg, **overrides) if overrides else cfg
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    typer.echo(f"serving {run} from {runs_dir} on http://{cfg.host}:{cfg.port}/ (Ctrl-C stops)")
    run_service(runs_dir, run=run, config=cfg)
