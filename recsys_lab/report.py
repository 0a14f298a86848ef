"""Tables for notebooks and the CLI, the HTML report, and the thin-notebook check."""

from __future__ import annotations

import ast
import logging
import re
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import polars as pl

from ._fs import atomic_write_text
from .errors import RunError

__all__ = ["PACKAGES", "package_versions", "show_versions", "metrics_table", "evaluation_table", "drift_table",
           "split_table",
           "timings_table",
           "format_summary", "export_html", "check_notebook"]

PACKAGES = ("recsys_lab", "rectools-lightfm", "pynndescent", "numba", "numpy", "scipy", "polars", "duckdb",
            "papermill", "nbformat", "nbconvert")
"""Packages whose versions go into every run manifest."""



def package_versions() -> dict[str, str | None]:
    """``{package: version}`` of :data:`PACKAGES` plus ``python`` (None for a package not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def show_versions() -> pl.DataFrame:
    """Versions as a two-column frame (for a notebook's first cell)."""
    v = package_versions()
    return pl.DataFrame({"package": list(v), "version": [str(x) for x in v.values()]})


_ORDER = ("popularity", "lightfm_cf", "lightfm_static", "ease", "als")


def _baselines(metrics: dict[str, float]) -> list[str]:
    found = {k.split(".")[1] for k in metrics if k.startswith("baseline.")}
    return [b for b in _ORDER if b in found] + sorted(found - set(_ORDER))


def metrics_table(metrics: dict[str, float]) -> pl.DataFrame:
    """Model vs baselines, one row per metric.

    Parameters
    ----------
    metrics : dict
        Flat metrics as in ``metrics.json``: plain names for the model, ``baseline.<name>.<metric>`` for
        baselines.

    Returns
    -------
    pl.DataFrame
        Columns ``metric, model`` and one per baseline present (``lightfm_cf``, ``lightfm_static`` when
        time-windowed features are on, ``popularity``), Float64; rows in metrics.json order.
    """
    names = [k for k in metrics if "." not in k and "@" in k or k in ("mrr", "auc")]
    cols = {"metric": names, "model": [metrics[n] for n in names]}
    for b in _baselines(metrics):
        cols[b] = [metrics.get(f"baseline.{b}.{n}") for n in names]
    return pl.DataFrame(cols, schema={c: pl.Utf8 if c == "metric" else pl.Float64 for c in cols})


def evaluation_table(metrics: dict[str, float], k: int = 10) -> pl.DataFrame:
    """Model and baselines with 95 % intervals and the paired difference to the model, one row per model.

    Parameters
    ----------
    metrics : dict
        Flat metrics as in ``metrics.json`` (``ndcg@k``, ``ndcg@k.ci_low``, ``baseline.<b>.ndcg@k``,
        ``vs.<b>.ndcg@k`` with ``.ci_low`` / ``.ci_high``, ``eval.n_users``).
    k : int
        ``eval.k``.

    Returns
    -------
    pl.DataFrame
        ``model, users, ndcg@k, ndcg_ci_low, ndcg_ci_high, recall@k, recall_ci_low, recall_ci_high,
        model_minus_this, diff_ci_low, diff_ci_high, verdict`` where the difference is the model's NDCG@k minus
        this row's, paired over the same users, and ``verdict`` says whether it is significant.
    """
    rows = []
    for name in ["model"] + _baselines(metrics):
        p = "" if name == "model" else f"baseline.{name}."
        vs = f"vs.{name}.ndcg@{k}"
        delta, lo, hi = metrics.get(vs), metrics.get(vs + ".ci_low"), metrics.get(vs + ".ci_high")
        verdict = ("" if delta is None or lo is None else
                   "model better" if lo > 0 else "model worse" if hi < 0 else "no significant difference")
        rows.append({"model": name, "users": metrics.get("eval.n_users"),
                     f"ndcg@{k}": metrics.get(f"{p}ndcg@{k}"), "ndcg_ci_low": metrics.get(f"{p}ndcg@{k}.ci_low"),
                     "ndcg_ci_high": metrics.get(f"{p}ndcg@{k}.ci_high"), f"recall@{k}": metrics.get(f"{p}recall@{k}"),
                     "recall_ci_low": metrics.get(f"{p}recall@{k}.ci_low"),
                     "recall_ci_high": metrics.get(f"{p}recall@{k}.ci_high"),
                     "model_minus_this": delta, "diff_ci_low": lo, "diff_ci_high": hi, "verdict": verdict})
    schema = {c: pl.Float64 for c in rows[0]}
    schema.update({"model": pl.Utf8, "verdict": pl.Utf8, "users": pl.Int64})
    return pl.DataFrame(rows, schema=schema)


def drift_table(metrics: dict[str, float]) -> pl.DataFrame:
    """The ``drift.*`` metrics with their PSI band (< 0.1 stable, 0.1-0.25 moderate, > 0.25 major).

    Returns
    -------
    pl.DataFrame
        ``measure, value, band`` (band empty for shares and churn); empty when there was no reference.
    """
    from .validate import psi_band

    rows = [{"measure": k[len("drift."):], "value": float(v),
             "band": psi_band(v) if k.startswith("drift.psi.") else ""}
            for k, v in metrics.items() if k.startswith("drift.")]
    return pl.DataFrame(rows, schema={"measure": pl.Utf8, "value": pl.Float64, "band": pl.Utf8})


def split_table(stats: dict) -> pl.DataFrame:
    """Split statistics (``Split.stats``) as a two-column frame."""
    return pl.DataFrame({"statistic": list(stats), "value": [str(v) for v in stats.values()]})


def timings_table(timings: dict[str, float]) -> pl.DataFrame:
    """Phase timings (seconds) as a frame."""
    return pl.DataFrame({"phase": list(timings), "seconds_or_rate": [float(v) for v in timings.values()]})


def format_summary(metrics: dict[str, float], k: int = 10, *, warnings: list[str] | None = None,
                   protocol: str | None = None) -> str:
    """Short plain-text table of the headline metrics vs baselines, with intervals (for the CLI).

    Parameters
    ----------
    metrics : dict
        ``metrics.json``.
    k : int
        ``eval.k``.
    warnings : list of str, optional
        Evaluation warnings to print last (e.g. an interval too wide to decide).
    protocol : str, optional
        The split method, named in the header.
    """
    keys = [f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", "mrr", "auc", f"coverage@{k}"]
    cols = ["model"] + _baselines(metrics)
    users = metrics.get("eval.n_users")
    head = f"evaluation: {users} users" + (f", {protocol} split" if protocol else "") + "; model [95% interval]"
    lines = [head, f"{'metric':<14}{'model':>26}" + "".join(f"{c:>14}" for c in cols[1:])]
    for key in keys:
        if key not in metrics:
            continue
        lo, hi = metrics.get(f"{key}.ci_low"), metrics.get(f"{key}.ci_high")
        model = f"{metrics[key]:.4f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else "")
        cells = [metrics.get(f"baseline.{b}.{key}") for b in cols[1:]]
        lines.append(f"{key:<14}{model:>26}" + "".join(f"{c:>14.4f}" if isinstance(c, (int, float)) else f"{'-':>14}"
                                                       for c in cells))
    diffs = []
    for b in cols[1:]:
        key = f"vs.{b}.ndcg@{k}"
        if key in metrics and metrics.get(key + ".ci_low") is not None:
            lo, hi = metrics[key + ".ci_low"], metrics[key + ".ci_high"]
            sig = "better" if lo > 0 else "worse" if hi < 0 else "n.s."
            diffs.append(f"{b} {metrics[key]:+.4f} [{lo:+.4f}, {hi:+.4f}] {sig}")
    if diffs:
        lines.append(f"paired ndcg@{k}, model - baseline: " + "; ".join(diffs))
    ann = metrics.get(f"ann.recall@{k}")
    if ann is not None:
        lines.append(f"ann.recall@{k} (index vs exact top-{k}): {ann:.4f}")
    psis = {m: v for m, v in metrics.items() if m.startswith("drift.psi.") and isinstance(v, (int, float))}
    if psis:
        worst = max(psis, key=lambda m: psis[m] if psis[m] == psis[m] else -1)
        lines.append(f"drift vs production: max PSI {psis[worst]:.3f} ({worst[len('drift.psi.'):]})")
    for w in warnings or []:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


_EXPORTER = None


def export_html(notebook: str | Path, html: str | Path) -> Path:
    """Render an executed notebook to standalone HTML with nbconvert (atomic write).

    A module-level ``HTMLExporter`` is reused: ~20 ms per export in-process against ~1 s for the
    ``jupyter nbconvert`` CLI (DESIGN.md).

    Raises
    ------
    RunError
        The notebook cannot be read or rendered.
    """
    global _EXPORTER
    from nbconvert import HTMLExporter

    if _EXPORTER is None:
        _EXPORTER = HTMLExporter()
        _EXPORTER.log.setLevel(logging.ERROR)  # "alternative text is missing" on every matplotlib figure
    try:
        body, _ = _EXPORTER.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    except Exception as exc:  # nbconvert raises many types; wrap with context
        raise RunError(f"{notebook}: cannot render to HTML ({exc})") from exc
    return atomic_write_text(html, body)


_PRIVATE_IMPORT = re.compile(r"(from\s+recsys_lab[\w.]*\s+import\s+.*\b_\w+)|(recsys_lab(\.\w+)*\._\w+)")


def check_notebook(path: str | Path) -> list[str]:
    """Problems that break the thin-notebook rules (empty list: the notebook is fine).

    Rules: valid nbformat; exactly one code cell tagged ``parameters``; no outputs or execution counts
    committed; no ``def`` / ``class`` / ``for`` / ``while`` in code cells (logic lives in ``recsys_lab``);
    no import of private ``recsys_lab`` names.
    """
    nb = nbformat.read(str(path), as_version=4)
    problems = []
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as exc:
        problems.append(f"invalid nbformat: {exc.message}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        problems.append(f"expected exactly one code cell tagged 'parameters', found {len(tagged)}")
    for i, c in enumerate(nb.cells):
        if c.cell_type != "code":
            continue
        if c.get("outputs") or c.get("execution_count"):
            problems.append(f"cell {i}: has outputs (commit notebooks without outputs)")
        src = "\n".join(line for line in c.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError as exc:
            problems.append(f"cell {i}: syntax error ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.For, ast.While)):
                problems.append(f"cell {i}: {type(node).__name__} in a notebook; move the logic into recsys_lab")
        if _PRIVATE_IMPORT.search(c.source):
            problems.append(f"cell {i}: uses a private recsys_lab name")
    return problems


def require_thin(path: str | Path) -> None:
    """Raise :class:`RunError` listing :func:`check_notebook` problems, if any."""
    problems = check_notebook(path)
    if problems:
        raise RunError(f"{path}: not a thin notebook: " + "; ".join(problems))
