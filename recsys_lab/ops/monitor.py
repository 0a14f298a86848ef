"""The monitoring page ``runs/index.html``: every run over time on one self-contained page.

:func:`write` reads :func:`recsys_lab.runs.registry.history` and writes the page atomically; :func:`render` is the
page itself: NDCG@k and recall@k of production and candidates with their 95 % interval bands, per-group NDCG (the
``eval.user_groups`` cross-sections), drift PSI, durations against the SLA, the gate outcome of every run and a
relative link to each run's ``report.html``. The figures are inline SVG written here: the page loads nothing (no
script, no CDN, no font), so it opens offline and calls no third party. ``recsys-lab runs monitor`` writes it, and so
does every ``recsys-lab retrain``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from recsys_lab._fs import atomic_write_text
from recsys_lab.ops.sla import format_age
from recsys_lab.runs.history import DRIFT_PREFIX, GROUP_METRIC, GROUP_PREFIX
from recsys_lab.runs.registry import history
from recsys_lab.store.folder import RunFolder

__all__ = ["PAGE", "PSI_BOUNDS", "page_path", "render", "write"]

PAGE = "index.html"
"""The page's file name in the runs directory."""
PSI_BOUNDS = ((0.1, "moderate"), (0.25, "major"))
"""The usual PSI reading guides drawn on the drift figure."""

_W, _H, _L, _R, _T, _B = 1000, 250, 64, 180, 28, 40  # figure size and margins (legend on the right)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1060px;color:#222}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
.verdict{background:#f5f7fa;border-left:4px solid #1f77b4;padding:8px 14px}.verdict p{margin:4px 0}
table{border-collapse:collapse;font-size:13px;width:100%}th,td{padding:3px 8px;border-bottom:1px solid #eee;
text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}.bad{color:#b00020}.ok{color:#1b7a1b}
svg text{font:11px system-ui,sans-serif}.empty{color:#777}"""


def page_path(runs_dir: str | Path = "runs") -> Path:
    """Where the monitoring page of a runs directory is.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.

    Returns
    -------
    Path
        ``runs_dir/index.html``.
    """
    return Path(runs_dir) / PAGE


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _fmt(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if _num(v) else "–"


def _day(text: Any) -> str:
    return str(text)[:10] if text else "?"


def _chart(title: str, labels: list[str], series: list[dict[str, Any]], *, ids: list[str],
           hlines: tuple[tuple[float, str], ...] = (), bars: bool = False, note: str = "") -> str:
    """One SVG figure: a point per run (x), lines with interval bands (or bars), dashed reference lines.

    ``series``: ``{"name", "color", "y": [float | None per run], "lo", "hi" (optional, same length)}``.
    """
    values = [v for s in series for key in ("y", "lo", "hi") for v in s.get(key) or [] if _num(v)]
    values += [y for y, _ in hlines if _num(y)]
    if not values:
        return f'<p class="empty">{_e(title)}: nothing measured yet.</p>'
    lo, hi = (0.0 if bars else min(values)), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    lo, hi = (lo if bars else 0.0 if lo - pad < 0 <= lo else lo - pad), hi + pad  # no axis below 0 for measures >= 0
    n, pw, ph = len(labels), _W - _L - _R, _H - _T - _B

    def x(i: int) -> float:
        return _L + (pw * (i + 0.5) / n)

    def y(v: float) -> float:
        return _T + ph * (1 - (v - lo) / (hi - lo))

    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
            f'role="img" aria-label="{_e(title)}"><text x="{_L}" y="16" font-weight="bold">{_e(title)}</text>'),
           f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>']
    for t in range(5):
        v = lo + (hi - lo) * t / 4
        out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{_L - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.3g}</text>')
    step = max(1, math.ceil(n / 12))
    for i, lab in enumerate(labels):
        if i % step == 0 or i == n - 1:
            out.append(f'<text x="{x(i):.1f}" y="{_T + ph + 16}" text-anchor="middle">{_e(lab)}</text>')
    for v, text in hlines:
        if lo <= v <= hi:
            out.append(f'<line x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#b00020" '
                       f'stroke-dasharray="5,4"/><text x="{_L + pw - 4}" y="{y(v) - 4:.1f}" text-anchor="end" '
                       f'fill="#b00020">{_e(text)}</text>')
    bw = pw / n * 0.6 / max(1, len(series))
    for j, s in enumerate(series):
        ys, los, his, c = s["y"], s.get("lo") or [None] * n, s.get("hi") or [None] * n, s["color"]
        pts = [(i, v) for i, v in enumerate(ys) if _num(v)]
        band = [(i, los[i], his[i]) for i, _ in pts if _num(los[i]) and _num(his[i])]
        if len(band) > 1:
            ring = [f"{x(i):.1f},{y(h):.1f}" for i, _, h in band] + [f"{x(i):.1f},{y(lw):.1f}" for i, lw, _ in
                                                                     reversed(band)]
            out.append(f'<polygon class="band" points="{" ".join(ring)}" fill="{c}" fill-opacity="0.15"/>')
        for i, lw, h in band:
            out.append(f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(lw):.1f}" y2="{y(h):.1f}" stroke="{c}" '
                       f'stroke-opacity="0.6"/>')
        if bars:
            for i, v in pts:
                fill = (s.get("colors") or [c] * n)[i]
                out.append(f'<rect x="{x(i) - bw * len(series) / 2 + j * bw:.1f}" y="{y(v):.1f}" width="{bw:.1f}" '
                           f'height="{y(lo) - y(v):.1f}" fill="{fill}"><title>{_e(ids[i])}: {_e(s["name"])} '
                           f'{v:.4g}</title></rect>')
        else:
            if len(pts) > 1:
                path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in pts)
                out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="1.8"/>')
            for i, v in pts:
                ci = f" [{_fmt(los[i])}, {_fmt(his[i])}]" if _num(los[i]) else ""
                out.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" fill="{c}"><title>'
                           f'{_e(ids[i])}: {_e(s["name"])} {v:.4f}{ci}</title></circle>')
        ly = _T + 14 + 18 * j
        out.append(f'<rect x="{_L + pw + 12}" y="{ly - 9}" width="12" height="10" fill="{c}"/>'
                   f'<text x="{_L + pw + 30}" y="{ly}">{_e(s["name"])} ({len(pts)})</text>')
    if note:
        out.append(f'<text x="{_L + pw + 12}" y="{_T + ph - 4}" fill="#b00020">{_e(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _metric_chart(h: pl.DataFrame, metric: str, k_label: str, labels: list[str], ids: list[str]) -> str:
    """``metric`` over time, production's runs and the candidates as two series with their interval bands."""
    prod = [bool(p) or bool(q) for p, q in zip(h["promoted"], h["production"])]
    series = []
    for name, color, mine in (("production", _PALETTE[0], True), ("candidates", _PALETTE[1], False)):
        pick = [m == mine for m in prod]
        series.append({"name": name, "color": color, **{key: [v if p else None for v, p in zip(h[col], pick)]
                       for key, col in (("y", metric), ("lo", metric + ".ci_low"), ("hi", metric + ".ci_high"))}})
    return _chart(f"{metric.replace('@k', '@' + k_label)} over time (95 % interval bands)", labels, series, ids=ids)


def _group_charts(h: pl.DataFrame, k_label: str, labels: list[str], ids: list[str]) -> list[str]:
    """One figure per user attribute: NDCG@k of each group over time, with interval bands."""
    attrs: dict[str, list[str]] = {}
    for col in h.columns:
        if col.startswith(GROUP_PREFIX) and GROUP_METRIC in col and not col.endswith((".ci_low", ".ci_high")):
            attr, group = col[len(GROUP_PREFIX):].split(GROUP_METRIC, 1)
            attrs.setdefault(attr, []).append(group)
    charts = []
    for attr, groups in attrs.items():
        series = []
        for j, group in enumerate(groups):
            col = f"{GROUP_PREFIX}{attr}{GROUP_METRIC}{group}"
            series.append({"name": group, "color": _PALETTE[j % len(_PALETTE)], "y": h[col].to_list(),
                           "lo": h[col + ".ci_low"].to_list() if col + ".ci_low" in h.columns else None,
                           "hi": h[col + ".ci_high"].to_list() if col + ".ci_high" in h.columns else None})
        charts.append(_chart(f"NDCG@{k_label} by {attr} over time", labels, series, ids=ids))
    return charts


def _duration_chart(h: pl.DataFrame, labels: list[str], ids: list[str]) -> str:
    """Durations as bars (red past the SLA) and the SLA as a dashed line, or a note when it is off the scale."""
    slas = [s for s in h["sla_s"] if _num(s)]
    sla = min(slas) if slas else None
    durations = h["duration_s"].to_list()
    colors = ["#b00020" if w is False else _PALETTE[2] for w in h["within_sla"]]
    top = max([d for d in durations if _num(d)] or [0.0])
    note = (f"SLA {format_age(sla)}: far above the bars" if sla is not None and sla > 3 * top else "")
    hlines = ((sla, f"SLA {format_age(sla)}"),) if sla is not None and not note else ()
    return _chart("Duration (s) against the SLA", labels, [{"name": "duration", "color": _PALETTE[2],
                                                          "y": durations, "colors": colors}],
                  ids=ids, hlines=hlines, bars=True, note=note)


def _gate(row: dict[str, Any]) -> str:
    if row.get("note"):
        return f'<span class="bad">{_e(row["note"])}</span>'
    if row.get("status") != "succeeded":
        return f'<span class="bad">{_e(row.get("status"))}: {_e(row.get("reason") or "no reason recorded")}</span>'
    if row.get("gate_passed") is False:
        return f'<span class="bad">gate refused: {_e(row.get("reason") or "see the report")}</span>'
    return '<span class="ok">gate passed</span>' if row.get("gate_passed") else "no gate"


def _table(h: pl.DataFrame, reports: set[str], k_label: str) -> str:
    """Every run, newest cut-off first: link to its report, status and gate, promotion, headline metrics, SLA."""
    head = (f"<tr><th>as of</th><th>run</th><th>outcome</th><th>promoted</th><th>NDCG@{k_label} [95 % CI]</th>"
            f"<th>recall@{k_label}</th><th>duration</th></tr>")
    body = []
    for r in reversed(h.to_dicts()):
        rid = r["run_id"]
        link = (f'<a href="{quote(rid)}/{RunFolder(rid).report.name}">{_e(rid)}</a>' if rid in reports
                else f"{_e(rid)} (no report)")
        tags = " production" if r["production"] else ""
        tags += " backfill" if r.get("backfill") else ""
        ci = f" [{_fmt(r.get('ndcg@k.ci_low'))}, {_fmt(r.get('ndcg@k.ci_high'))}]" if _num(r.get("ndcg@k.ci_low")) \
            else ""
        dur = f"{r['duration_s']:.0f} s" if _num(r.get("duration_s")) else "–"
        if r.get("within_sla") is False:
            dur = f'<span class="bad">{dur} (over the SLA {format_age(r["sla_s"])})</span>'
        body.append(f"<tr><td>{_e(_day(r.get('as_of')))}</td><td>{link}<small>{tags}</small></td><td>{_gate(r)}</td>"
                    f"<td>{'yes' if r.get('promoted') else 'no'}</td><td class=n>{_fmt(r.get('ndcg@k'))}{ci}</td>"
                    f"<td class=n>{_fmt(r.get('recall@k'))}</td><td class=n>{dur}</td></tr>")
    return f"<table>{head}{''.join(body)}</table>"


def _verdict(h: pl.DataFrame, k_label: str) -> str:
    """Plain sentences: production, the latest run's outcome, and counts of gate refusals, failures and SLA misses."""
    if h.height == 0:
        return "<p>No run yet: `recsys-lab retrain` (or `recsys-lab backfill`) makes the first.</p>"
    rows = h.to_dicts()
    prod = [r for r in rows if r["production"]]
    lines = []
    if prod:
        p = prod[0]
        lines.append(f"Production is run {_e(p['run_id'])} (data as of {_e(_day(p['as_of']))}), "
                     f"NDCG@{k_label} {_fmt(p.get('ndcg@k'))} [{_fmt(p.get('ndcg@k.ci_low'))}, "
                     f"{_fmt(p.get('ndcg@k.ci_high'))}].")
    else:
        lines.append("No production run yet (promote one with `recsys-lab runs promote ID`).")
    last = max(rows, key=lambda r: (r.get("started_at") or "", r["run_id"]))
    lines.append(f"The latest run {_e(last['run_id'])}: {_gate(last)}; "
                 f"{'promoted' if last.get('promoted') else 'not promoted'}.")
    ok = sum(r.get("status") == "succeeded" for r in rows)
    refused = sum(r.get("gate_passed") is False for r in rows)
    over = sum(r.get("within_sla") is False for r in rows)
    damaged = sum(bool(r.get("note")) for r in rows)
    lines.append(f"{len(rows)} runs: {ok} succeeded, {len(rows) - ok - damaged} did not, {refused} refused by the "
                 f"gate, {sum(bool(r.get('promoted')) for r in rows)} promoted; "
                 + (f'<span class="bad">{over} over the SLA</span>' if over else "all within the SLA")
                 + (f"; {damaged} unreadable (skipped)." if damaged else "."))
    return "".join(f"<p>{line}</p>" for line in lines)


def render(h: pl.DataFrame, *, reports: set[str] | None = None, title: str = "recsys_lab runs") -> str:
    """The monitoring page of a history frame.

    Parameters
    ----------
    h : pl.DataFrame
        :func:`recsys_lab.runs.registry.history` (rows in the order of their data cut-off).
    reports : set of str, optional
        Run ids whose ``report.html`` exists (linked relatively as ``<run_id>/report.html``); default none.
    title : str
        The page title.

    Returns
    -------
    str
        A self-contained HTML document (inline CSS and SVG; no script, no external resource).
    """
    reports = reports or set()
    ks = sorted({int(k) for k in h["k"] if k is not None}) if h.height else []
    k_label = str(ks[0]) if len(ks) == 1 else "k"
    labels, ids = [_day(a) for a in h["as_of"]], h["run_id"].to_list()
    drift = [c for c in h.columns if c.startswith(DRIFT_PREFIX)]
    parts = [f"<h1>{_e(title)}</h1><div class=verdict>{_verdict(h, k_label)}</div>"]
    if h.height:
        parts.append("<h2>Ranking quality over time</h2><p>One point per run, ordered by the data cut-off "
                     "(<code>data.until</code>, else the start of the run); production's runs and the candidates, "
                     "each with its 95 % interval band.</p>")
        parts += [_metric_chart(h, m, k_label, labels, ids) for m in ("ndcg@k", "recall@k")]
        parts.append("<h2>Per-group NDCG over time</h2>")
        parts += _group_charts(h, k_label, labels, ids) or [('<p class="empty">No user groups evaluated '
                                                             '(<code>eval.user_groups</code>).</p>')]
        parts.append("<h2>Drift over time (PSI against production)</h2>")
        parts.append(_chart("Drift PSI", labels, [{"name": c[len(DRIFT_PREFIX):], "color": _PALETTE[j % 8],
                                                   "y": h[c].to_list()} for j, c in enumerate(drift)],
                            ids=ids, hlines=tuple((v, f"{t} ({v})") for v, t in PSI_BOUNDS)) if drift else
                     '<p class="empty">No drift measured yet (a run measures drift against a production run).</p>')
        parts.append("<h2>Durations against the SLA</h2>" + _duration_chart(h, labels, ids))
        parts.append("<h2>Runs and gate outcomes</h2>" + _table(h, reports, k_label))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write(runs_dir: str | Path = "runs") -> Path:
    """Write ``runs_dir/index.html`` from the registry's history (atomic replace).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (created when missing).

    Returns
    -------
    Path
        The page.

    Raises
    ------
    OSError
        The page cannot be written.
    """
    runs_dir = Path(runs_dir)
    h = history(runs_dir)
    reports = {rid for rid in h["run_id"] if RunFolder(runs_dir / rid).report.is_file()}
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = page_path(runs_dir)
    atomic_write_text(path, render(h, reports=reports, title=f"recsys_lab monitoring: {runs_dir.resolve().parent.name}/{runs_dir.name}"))
    return path
