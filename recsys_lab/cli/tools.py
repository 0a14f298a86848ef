"""Developer tools behind the defaults: ``bench`` (benchmarks) and ``study`` (evaluation studies). The library never
imports :mod:`recsys_lab.tools`; only these commands do."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from recsys_lab.cli.options import build_config, config_option, data_option, json_option, param_option
from recsys_lab.errors import ConfigError

__all__ = ["bench", "study_app"]

study_app = typer.Typer(no_args_is_help=True, help="Evaluation studies behind the defaults (protocols, gate noise).")


def bench(
    config: Optional[Path] = config_option("TOML config (data and model settings)."),
    param: Optional[list[str]] = param_option(),
    data: Optional[Path] = data_option(),
    repeat: int = typer.Option(3, "--repeat", help="Timed repetitions (best is reported)."),
    large_items: int = typer.Option(100_000, "--large-items", help="Synthetic catalogue size for ANN at scale "
                                    "(0 skips it)."),
    gemm_size: int = typer.Option(50_000, "--gemm-size", help="Users = items of the top-k vs bare GEMM "
                                  "comparison (0 skips it)."),
    ann_bench: bool = typer.Option(False, "--ann", help="Only candidate generation: on five test sets (LightFM of "
                                   "two generator shapes, ALS, MovieLens, a log grown from it), the default index "
                                   "vs exact top-k vs hnswlib ip at matched recall, and the exact/index crossover."),
    ann_items: str = typer.Option("100000", "--ann-items", help="--ann: catalogue sizes, comma-separated."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="--ann: where trained vectors are cached "
                                             "(default: a folder in the system temp dir)."),
    as_json: bool = json_option("Also print the figures as JSON."),
    foldin: bool = typer.Option(False, "--foldin", help="Fold-in benchmarks instead: onboarding latency "
                                "(fold-in + top-10, p50/p99) and update throughput (users/s)."),
    serve_bench: bool = typer.Option(False, "--serve", help="The HTTP service instead: GET /recommendations "
                                     "p50/p99 and requests/s with 1, 8 and 32 clients at ML-100k and at "
                                     "--large-items items, against the in-process call."),
    serve_seconds: float = typer.Option(10.0, "--serve-seconds", help="--serve: seconds per load level."),
) -> None:
    """Benchmarks against baselines measured in the same run (top-k vs GEMM, metrics, ANN vs exact; or fold-in)."""
    from recsys_lab.tools.bench import run, run_foldin
    from recsys_lab.tools.ann_bench import ann_benchmark, ann_crossover
    from recsys_lab.tools.ann_sets import ann_sizes, default_cache_dir, lightfm_vectors

    if serve_bench:
        from recsys_lab.tools.bench_serve import serve_benchmark

        figures = serve_benchmark(build_config(config, param, data), large_items=large_items, seconds=serve_seconds,
                                  echo=typer.echo)
    elif foldin:
        figures = run_foldin(build_config(config, param, data), large_items=large_items, echo=typer.echo)
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
        figures = run(build_config(config, param, data), repeat=repeat, large_items=large_items,
                      gemm_size=gemm_size, echo=typer.echo)
    if as_json:
        typer.echo(json.dumps(figures, indent=2))


@study_app.command("protocols")
def study_protocols(
    config: Optional[Path] = config_option("TOML config (data, model, baselines)."),
    param: Optional[list[str]] = param_option(),
    data: Optional[Path] = data_option(),
) -> None:
    """Model and every baseline under each split protocol, NDCG@k with 95% intervals and users."""
    from recsys_lab.tools.study import protocols

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    protocols(build_config(config, param, data), echo=typer.echo)


@study_app.command("gate-noise")
def study_gate_noise(
    config: Optional[Path] = config_option("TOML config (data and model)."),
    param: Optional[list[str]] = param_option(),
    data: Optional[Path] = data_option(),
    runs: int = typer.Option(6, "--runs", help="Equivalent retrains (seeds 1..N) per protocol."),
) -> None:
    """How often equivalent retrains fail the regression gate: mean-drop rule vs the paired rule."""
    from recsys_lab.tools.study import gate_noise

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    gate_noise(build_config(config, param, data), runs=runs, echo=typer.echo)
