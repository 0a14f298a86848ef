"""The HTML report: a run's executed notebook exported without code and without a CDN, the verdict card first;
Polars frames rendered as plain, styled HTML tables; the package versions of a run's manifest.

:func:`frame_html` is how a table reads in the report: every row (no elision), no shape or dtype row, strings
unquoted and uncut, numbers rounded (3 decimals below 100), a ``*_ci_low`` / ``*_ci_high`` pair shown as one
``[lo, hi]`` column, a ``passed`` column as passed / failed. :func:`use_html_tables` makes a notebook display
every frame that way; :func:`export_html` renders the notebook with nbconvert's lab template minus its CDN scripts
(require.js, MathJax, Mermaid), so the page loads with the network off.
"""

from __future__ import annotations

import html as _html
import logging
import math
import re
import sys
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import polars as pl

from recsys_lab._fs import atomic_write_text
from recsys_lab.errors import RunError

__all__ = ['PACKAGES', 'MAX_ROWS', 'CSS', 'package_versions', 'show_versions', 'format_value', 'frame_html',
           'use_html_tables', 'export_html', 'replace_verdict']


_EXPORTER = None

PACKAGES = ("recsys_lab", "rectools-lightfm", "pynndescent", "numba", "numpy", "scipy", "polars", "duckdb",
            "papermill", "nbformat", "nbconvert")
"""Packages whose versions go into every run manifest."""
MAX_ROWS = 1000
"""Rows :func:`frame_html` shows at most (the report's tables are far shorter: every row is shown)."""

CSS = """
body.jp-Notebook { max-width: 76rem; margin: 0 auto; }
.jp-OutputArea-output table.rl-table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.9em; }
.jp-OutputArea-output table.rl-table th, .jp-OutputArea-output table.rl-table td { padding: 0.25em 0.7em;
  border: none; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; white-space: normal;
  max-width: 40rem; }
.jp-OutputArea-output table.rl-table th { border-bottom: 2px solid #888; font-weight: 600; background: #f3f3f3; }
.jp-OutputArea-output table.rl-table td.num, .jp-OutputArea-output table.rl-table th.num { text-align: right;
  font-variant-numeric: tabular-nums; white-space: nowrap; }
.jp-OutputArea-output table.rl-table tbody tr:nth-child(even) { background: #fafafa; }
.jp-OutputArea-output table.rl-table tbody tr:hover { background: #eef4fb; }
.jp-OutputArea-output table.rl-table caption { caption-side: bottom; text-align: left; color: #555; }
.jp-OutputArea-output pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.jp-OutputArea-output table.rl-table td.passed { color: #1b6e20; font-weight: 600; }
.jp-OutputArea-output table.rl-table td.failed { color: #b00020; font-weight: 600; }
.jp-OutputArea-output table.rl-table td.warning { color: #8a5a00; font-weight: 600; }
section.rl-verdict { font-family: var(--jp-content-font-family, system-ui, sans-serif); color: #1a1a1a;
  border: 1px solid #ccc; border-left: 0.5em solid #888; border-radius: 4px; padding: 0.8em 1.2em;
  margin: 1em 0 1.5em; background: #fbfbfb; font-size: 0.95rem; line-height: 1.5; }
section.rl-verdict.rl-promoted { border-left-color: #1b6e20; }
section.rl-verdict.rl-held { border-left-color: #c98a00; }
section.rl-verdict.rl-refused { border-left-color: #b00020; }
section.rl-verdict p.rl-sentence { font-size: 1.25em; font-weight: 600; margin: 0 0 0.6em; }
section.rl-verdict dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25em 1em; margin: 0; }
section.rl-verdict dt { font-weight: 600; color: #444; }
section.rl-verdict dd { margin: 0; }
section.rl-verdict p.rl-note { color: #555; font-size: 0.85em; margin: 0.8em 0 0; }
"""
"""Style of the report's tables and verdict card (inlined in the page, nothing fetched)."""

_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block extra_css -%}<style type="text/css">{{ resources.recsys_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}{{ super() }}
{{ resources.recsys_verdict }}
{%- endblock body_header -%}
"""
"""nbconvert's lab template without its CDN scripts (require.js, MathJax, Mermaid, widgets), with :data:`CSS`
and the verdict card first in ``<main>``."""
_TEMPLATE_NAME = "recsys_lab_report.html.j2"


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


def format_value(value: Any) -> str:
    """One cell as a reader sees it: numbers rounded, nothing quoted, missing values as an en dash.

    Parameters
    ----------
    value : object
        A cell of a frame.

    Returns
    -------
    str
        ``–`` for None or NaN; a float with 3 decimals below 100, 1 decimal below 1,000, else no decimals with
        thousands separators; an integer with separators from 10,000 on; a bool as ``yes`` / ``no``; a datetime
        as ``YYYY-MM-DD HH:MM:SS`` (plus its zone); a list as its items joined by ``, ``; anything else ``str``.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        size = abs(value)
        return f"{value:.3f}" if size < 100 else f"{value:.1f}" if size < 1000 else f"{value:,.0f}"
    if isinstance(value, datetime):
        zone = value.tzname()
        return value.strftime("%Y-%m-%d %H:%M:%S") + (f" {'UTC' if zone in ('UTC', 'Etc/UTC') else zone}"
                                                      if zone else "")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def _interval_pairs(columns: list[str]) -> dict[str, tuple[str, str]]:
    """``{low column: (high column, shown name)}`` for every ``<p>ci_low`` with a matching ``<p>ci_high``."""
    pairs = {}
    for col in columns:
        if col.endswith("ci_low") and col[:-len("ci_low")] + "ci_high" in columns:
            head = col[:-len("ci_low")].rstrip("_.")
            pairs[col] = (col[:-len("ci_low")] + "ci_high", f"{head} 95% interval" if head else "95% interval")
    return pairs


def _interval(lo: Any, hi: Any) -> str:
    if lo is None or hi is None or (isinstance(lo, float) and math.isnan(lo)):
        return "–"
    return f"[{format_value(lo)}, {format_value(hi)}]"


def frame_html(df: pl.DataFrame, *, max_rows: int = MAX_ROWS) -> str:
    """A frame as a plain HTML table a reviewer reads (every row, rounded numbers, intervals as ``[lo, hi]``).

    Parameters
    ----------
    df : pl.DataFrame
        Any frame; its column names are shown with ``_`` as a space.
    max_rows : int
        Rows shown at most (default :data:`MAX_ROWS`): a longer frame shows its first ``max_rows`` and says so in
        a caption (never a silent ``…``).

    Returns
    -------
    str
        ``<table class="rl-table">``: one header row, one row per frame row (no elision, no dtype row, no shape),
        cells by :func:`format_value`; a ``*ci_low`` / ``*ci_high`` column pair becomes one ``[lo, hi]`` column
        where the low one stood; a Boolean ``passed`` column reads passed / failed, a ``result`` column is
        coloured by its value; numeric columns are right-aligned. An empty frame gives its header and one row
        ``none``.
    """
    total, df = df.height, df.head(max_rows)
    pairs = _interval_pairs(df.columns)
    highs = {high for high, _ in pairs.values()}
    shown = [c for c in df.columns if c not in highs]
    numeric = {c for c in df.columns if df.schema[c].is_numeric()}

    def head(col: str) -> str:
        name = pairs[col][1] if col in pairs else col.replace("_", " ")
        return f'<th class="num">{_html.escape(name)}</th>' if col in numeric else f"<th>{_html.escape(name)}</th>"

    rows = []
    for row in df.iter_rows(named=True):
        cells = []
        for col in shown:
            value = row[col]
            if col in pairs:
                cells.append(f'<td class="num">{_html.escape(_interval(value, row[pairs[col][0]]))}</td>')
            elif col == "passed" and isinstance(value, bool):
                word = "passed" if value else "failed"
                cells.append(f'<td class="{word}">{word}</td>')
            elif col == "result" and value in ("passed", "failed", "warning"):
                cells.append(f'<td class="{value}">{value}</td>')
            else:
                cls = ' class="num"' if col in numeric else ""
                cells.append(f"<td{cls}>{_html.escape(format_value(value))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(shown) or 1}">none</td></tr>')
    caption = f"<caption>first {df.height:,} of {total:,} rows</caption>" if total > df.height else ""
    return (f'<table class="rl-table">{caption}<thead><tr>' + "".join(head(c) for c in shown)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def use_html_tables() -> bool:
    """Display every Polars frame of the running notebook with :func:`frame_html` (no-op outside IPython).

    Returns
    -------
    bool
        Whether an IPython shell was found and its HTML formatter set.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with papermill and nbconvert
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["text/html"].for_type(pl.DataFrame, frame_html)
    return True


def _exporter():  # noqa: ANN202
    global _EXPORTER
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    if _EXPORTER is None:
        _EXPORTER = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
                                 template_file=_TEMPLATE_NAME, exclude_input=True, exclude_input_prompt=True,
                                 exclude_output_prompt=True)
        _EXPORTER.log.setLevel(logging.ERROR)  # "alternative text is missing" on every matplotlib figure
    return _EXPORTER


def export_html(notebook: str | Path, html: str | Path, *, verdict: str | None = None,
                title: str | None = None) -> Path:
    """Render an executed notebook to standalone HTML for a reviewer (atomic write, nothing fetched on load).

    The page opens with ``verdict`` (the card of :mod:`recsys_lab.report.verdict`) when given, hides the code
    (``TemplateExporter.exclude_input``; the executed ``.ipynb`` keeps it), drops stderr streams (library
    warnings, progress bars) and loads no script from a CDN (nbconvert's lab template fetches require.js and
    MathJax; this one leaves them out: the notebooks show no LaTeX and no widgets). A module-level
    ``HTMLExporter`` is reused: ~20 ms per export in-process against ~1 s for the ``jupyter nbconvert`` CLI
    (DESIGN.md).

    Parameters
    ----------
    notebook : str or Path
        The executed notebook.
    html : str or Path
        Where to write the report.
    verdict : str, optional
        HTML put first in the page (:meth:`recsys_lab.report.verdict.Verdict.html`).
    title : str, optional
        The page's ``<title>`` (default: the notebook's file name without extension).

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
        nb.metadata["title"] = title or Path(notebook).stem
        body, _ = _exporter().from_notebook_node(nb, resources={"recsys_css": CSS, "recsys_verdict": verdict or ""})
    except Exception as exc:  # nbconvert raises many types; wrap with context
        raise RunError(f"{notebook}: cannot render to HTML ({exc})") from exc
    return atomic_write_text(html, body)


_VERDICT = re.compile(r'<section class="rl-verdict[^"]*" id="verdict">.*?</section>', re.S)


def replace_verdict(html: str | Path, verdict: str) -> bool:
    """Put a new verdict card in place of the one an exported report holds (atomic write; the rest unchanged).

    The run layer exports the report before it promotes; once the promotion is done, this makes the page say so
    without rendering the notebook again.

    Parameters
    ----------
    html : str or Path
        A report written by :func:`export_html` with a verdict.
    verdict : str
        The new card (:meth:`recsys_lab.report.verdict.Verdict.html`).

    Returns
    -------
    bool
        Whether a card was found and replaced (False leaves the file as it was).

    Raises
    ------
    OSError
        The report cannot be read or written.
    """
    text = Path(html).read_text(encoding="utf-8")
    new, n = _VERDICT.subn(lambda _: verdict, text, count=1)
    if n:
        atomic_write_text(html, new)
    return bool(n)
