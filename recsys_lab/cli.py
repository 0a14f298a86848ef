"""``recsys-lab``: the command line. The only module that configures logging.

Exit codes: 0 success; 1 the run failed (its folder keeps the executed notebook); 2 bad usage, config or
data path (nothing was run).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from .config import Config, load_config, parse_value
from .errors import ConfigError, RecsysLabError

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="recsys_lab: train, index, evaluate and report recommender models from notebooks.")

EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _build_config(config: Optional[Path], params: Optional[list[str]], data: Optional[Path]) -> Config:
    overrides = {}
    for pair in params or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"expected NAME VALUE or NAME=VALUE, got {pair!r}", parameter=pair)
        overrides[name] = parse_value(value)
    if data is not None:
        overrides["data.path"] = str(data)
    return load_config(config, overrides)


@app.command()
def retrain(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="TOML config file (see `recsys-lab config`)."),
    param: Optional[list[str]] = typer.Option(None, "-p", "--param", metavar="NAME VALUE",
                                              help="Override one parameter, e.g. -p model.epochs 20 (repeatable)."),
    data: Optional[Path] = typer.Option(None, "--data", help="MovieLens 100k directory or zip (offline machines); "
                                        "default $RECSYS_LAB_DATA_DIR, else download into warehouse/."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Parent folder of the run folders."),
    notebook: Optional[Path] = typer.Option(None, "--notebook", help="Notebook to execute "
                                            "(default notebooks/retrain.ipynb)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Stream the notebook's output."),
) -> None:
    """Train, index, evaluate and report: execute the retrain notebook with papermill into runs/<run_id>/."""
    from .report import format_summary
    from .runs import execute

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = _build_config(config, param, data)
        result = execute(cfg, runs_dir=runs_dir, notebook=notebook, log_output=verbose)
    except RecsysLabError as exc:
        _fail(str(exc), EXIT_USAGE)
    t = result.manifest.get("timings", {})
    if result.status != "succeeded":
        typer.echo(f"run {result.run_id} FAILED: {result.reason}", err=True)
        typer.echo(f"executed notebook with the failing cell: {result.run_dir / 'retrain.ipynb'}", err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo(f"run {result.run_id} succeeded in {t.get('total', 0):.1f} s "
               f"(data snapshot {(result.manifest.get('data') or {}).get('snapshot')})")
    typer.echo(format_summary(result.metrics, cfg.eval.k))
    typer.echo("phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
    typer.echo(f"report: {result.report.resolve()}")


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


def main(argv: Optional[list[str]] = None) -> int:
    """Console-script entry point; returns the exit code."""
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
