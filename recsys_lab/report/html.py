"""The HTML report: a run's executed notebook exported without code, a verdict first, and the package versions of its manifest."""

from __future__ import annotations

import logging
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import polars as pl

from recsys_lab._fs import atomic_write_text
from recsys_lab.errors import RunError

from recsys_lab.report.text import format_summary

__all__ = ['PACKAGES', 'package_versions', 'show_versions', 'export_html', 'verdict_markdown']


_EXPORTER = None

PACKAGES = ("recsys_lab", "rectools-lightfm", "pynndescent", "numba", "numpy", "scipy", "polars", "duckdb",
            "papermill", "nbformat", "nbconvert")
"""Packages whose versions go into every run manifest."""



def package_versions() -> dict[str, str | None]:
    """``{package: version}`` of :data:`PACKAGES` plus ``python`` (None for a package not installed).

    Returns
    -------
    dict of str to str or None
        ``python`` first, then each name of :data:`PACKAGES`.
    """
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def show_versions() -> pl.DataFrame:
    """Versions as a two-column frame (for a notebook's first cell).

    Returns
    -------
    pl.DataFrame
        ``package, version`` (Utf8; ``"None"`` for a package not installed).
    """
    v = package_versions()
    return pl.DataFrame({"package": list(v), "version": [str(x) for x in v.values()]})


def _exporter():  # noqa: ANN202
    global _EXPORTER
    from nbconvert import HTMLExporter

    if _EXPORTER is None:
        _EXPORTER = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
        _EXPORTER.log.setLevel(logging.ERROR)  # "alternative text is missing" on every matplotlib figure
    return _EXPORTER


def export_html(notebook: str | Path, html: str | Path, *, verdict: str | None = None) -> Path:
    """Render an executed notebook to standalone HTML for a reviewer (atomic write).

    The HTML opens with ``verdict`` (Markdown: run id, status, gate, headline metrics) when given, hides the
    code (``TemplateExporter.exclude_input``; the executed ``.ipynb`` keeps it) and drops stderr streams
    (library warnings, progress bars), so the report reads as a document. A module-level ``HTMLExporter`` is
    reused: ~20 ms per export in-process against ~1 s for the ``jupyter nbconvert`` CLI (DESIGN.md).

    Parameters
    ----------
    notebook : str or Path
        The executed notebook.
    html : str or Path
        Where to write the report.
    verdict : str, optional
        Markdown put in a first cell (:func:`verdict_markdown`).

    Returns
    -------
    Path
        ``html``.

    Raises
    ------
    RunError
        The notebook cannot be read or rendered.
    """
    try:
        nb = nbformat.read(str(notebook), as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.get("outputs", [])
                                if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
        if verdict:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(verdict))
        body, _ = _exporter().from_notebook_node(nb)
    except Exception as exc:  # nbconvert raises many types; wrap with context
        raise RunError(f"{notebook}: cannot render to HTML ({exc})") from exc
    return atomic_write_text(html, body)


def verdict_markdown(run_id: str, status: str, *, reason: str | None = None, gate: dict | None = None,
                     metrics: dict | None = None, k: int = 10, promotion: dict | None = None,
                     warnings: list[str] | None = None, protocol: str | None = None) -> str:
    """The block a reviewer reads first: run id, status, gate verdict, promotion, headline metrics vs baselines.

    Parameters
    ----------
    run_id, status : str
    reason : str, optional
        Why the run did not succeed.
    gate : dict, optional
        ``GateResult.to_dict()``.
    metrics : dict, optional
        ``metrics.json``.
    k : int
        ``eval.k``.
    promotion : dict, optional
        ``run.json`` ``promotion`` (``requested``, ``done``, ``reason``).
    warnings : list of str, optional
        Evaluation warnings.
    protocol : str, optional
        The split method.

    Returns
    -------
    str
        Markdown.
    """
    lines = [f"# Run {run_id}: {status}"]
    if reason:
        lines.append(f"**Reason:** {reason}")
    if gate is not None:
        verdict = "**Gate: passed**" if gate.get("passed") else f"**Gate: FAILED**: {gate.get('reason')}"
        lines.append(verdict)
    if promotion is not None and promotion.get("requested"):
        lines.append("**Promotion requested**: the gate passed, so this run is promoted unless stopped first "
                     "(`run.json` `promotion` has the outcome)." if promotion.get("done") else
                     f"**Promotion requested, not done**: {promotion.get('reason')}")
    if metrics:
        lines.append("```\n" + format_summary(metrics, k, warnings=warnings, protocol=protocol) + "\n```")
    elif warnings:
        lines += [f"WARNING: {w}" for w in warnings]
    lines.append("*The sections below are the executed retrain notebook (code hidden; the run folder's "
                 "`retrain.ipynb` has it).*")
    return "\n\n".join(lines)
