"""The sweep's report page, ``runs/sweeps/<id>/report.html``: one self-contained HTML file (inline CSS, no script,
nothing fetched) with the verdict first (the winner and its paired comparison against the base config: delta,
95 % interval, number of users), then the re-runs and the trial table sorted by validation metric with the trials
ASHA stopped early flagged. Tables are the report's own (:func:`recsys_lab.report.html.frame_html`).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import polars as pl

from recsys_lab._fs import atomic_write_text
from recsys_lab.report.html import format_value, frame_html

__all__ = ["PAGE", "trial_view", "comparison_view", "verdict", "render", "write"]

PAGE = "report.html"
"""The page's name in the sweep folder."""

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1060px;color:#222;padding:0 12px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
section.rl-verdict{border:1px solid #ccc;border-left:.5em solid #888;border-radius:4px;padding:.8em 1.2em;
background:#fbfbfb}section.rl-verdict.rl-better{border-left-color:#1b6e20}
section.rl-verdict.rl-worse{border-left-color:#b00020}p.rl-sentence{font-size:1.15em;font-weight:600;margin:0 0 .5em}
p.rl-note{color:#555;font-size:.9em}
table.rl-table{border-collapse:collapse;margin:.4em 0 1em;font-size:.9em}
table.rl-table th,table.rl-table td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
table.rl-table th{border-bottom:2px solid #888;font-weight:600;background:#f3f3f3}
table.rl-table td.num,table.rl-table th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.rl-table tbody tr:nth-child(even){background:#fafafa}
"""


def _value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)  # a learning rate of 1e-4 is not 0.000


def _overrides(text: str) -> str:
    return ", ".join(f"{k.removeprefix('model.')} = {_value(v)}" for k, v in json.loads(text).items())


def trial_view(trials: pl.DataFrame) -> pl.DataFrame:
    """The trial table as shown: best validation first, ``stopped early`` a yes / no column.

    Parameters
    ----------
    trials : pl.DataFrame
        :func:`recsys_lab.scale.sweep.run_sweep`'s table (``trial, overrides, status, epochs, best_ndcg, error``).

    Returns
    -------
    pl.DataFrame
        ``rank, trial, setting, status, stopped_early, epochs, validation_ndcg, [seconds,] error`` (``seconds``:
        the trial's own work, when the table has it); failed trials (no metric) last.
    """
    if trials.is_empty():
        return pl.DataFrame(schema={"rank": pl.Int64, "trial": pl.Int64, "setting": pl.Utf8, "status": pl.Utf8,
                                    "stopped_early": pl.Utf8, "epochs": pl.Int64, "validation_ndcg": pl.Float64,
                                    "error": pl.Utf8})
    t = trials.with_columns(pl.col("best_ndcg").fill_nan(None)).sort("best_ndcg", descending=True, nulls_last=True)
    seconds = {"seconds": t["seconds"].fill_nan(None)} if "seconds" in t.columns else {}
    return pl.DataFrame({
        "rank": list(range(1, t.height + 1)),
        "trial": t["trial"],
        "setting": [_overrides(o) for o in t["overrides"]],
        "status": t["status"],
        "stopped_early": ["yes" if s == "stopped" else "no" for s in t["status"]],
        "epochs": t["epochs"],
        "validation_ndcg": t["best_ndcg"],
        **seconds,
        "error": t["error"].fill_null(""),
    })


def comparison_view(comparison: list[dict[str, Any]]) -> pl.DataFrame:
    """The re-run trials against the base run, one row each.

    Parameters
    ----------
    comparison : list of dict
        :attr:`recsys_lab.scale.sweep.SweepResult.comparison`.

    Returns
    -------
    pl.DataFrame
        ``trial, run, base_run, metric, base, trial_value, delta, ci_low, ci_high, n_users, significant, promoted``
        (``promoted`` empty unless promotion was asked for).
    """
    rows = []
    for e in comparison:
        vs = e.get("vs_base") or {}
        promo = e.get("promotion")
        rows.append({"trial": e["trial"], "run": f"{e['run']} ({e['status']})",
                     "base_run": f"{e['base_run']} ({e['base_status']})", "metric": vs.get("metric", "–"),
                     "base": vs.get("a"), "trial_value": vs.get("b"), "delta": vs.get("delta"),
                     "ci_low": vs.get("ci_low"), "ci_high": vs.get("ci_high"), "n_users": vs.get("n_users"),
                     "significant": None if not vs else ("yes" if vs.get("significant") else "no"),
                     "promoted": "" if not promo else ("yes" if promo["promoted"]
                                                       else f"no: {promo.get('reason') or 'gate failed'}")})
    schema = {"trial": pl.Int64, "run": pl.Utf8, "base_run": pl.Utf8, "metric": pl.Utf8, "base": pl.Float64,
              "trial_value": pl.Float64, "delta": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
              "n_users": pl.Int64, "significant": pl.Utf8, "promoted": pl.Utf8}
    return pl.DataFrame(rows, schema=schema)


def verdict(trials: pl.DataFrame, winner: dict | None, comparison: list[dict[str, Any]]) -> tuple[str, str]:
    """The page's first sentence and its tone (``better``, ``worse`` or ``neutral``).

    Parameters
    ----------
    trials : pl.DataFrame
    winner : dict or None
    comparison : list of dict

    Returns
    -------
    tuple of (str, str)
    """
    if winner is None:
        return f"No winner: none of the {trials.height} trials finished.", "worse"
    head = (f"Winner: trial {winner['trial']} ({_overrides(json.dumps(winner['overrides']))}), validation NDCG "
            f"{winner['validation_ndcg']:.4f}.")
    entry = next((e for e in comparison if e["trial"] == winner["trial"]), None)
    vs = (entry or {}).get("vs_base")
    if not vs:
        return head + (" Not re-run: no comparison with the base config." if entry is None
                       else " Its re-run or the base run did not succeed: no comparison."), "neutral"
    tone = "neutral" if not vs["significant"] else "better" if vs["delta"] > 0 else "worse"
    word = ("better than" if vs["delta"] > 0 else "worse than") if vs["significant"] else "not distinguishable from"
    return (f"{head} Re-run as a retrain it is {word} the base config on the test split: {vs['metric']} "
            f"{format_value(vs['b'])} vs {format_value(vs['a'])}, difference {vs['delta']:+.4f} "
            f"[{vs['ci_low']:+.4f}, {vs['ci_high']:+.4f}] (95% paired interval, {int(vs['n_users']):,} users)."), tone


def render(trials: pl.DataFrame, winner: dict | None, comparison: list[dict[str, Any]], *,
           sweep_id: str, settings: dict[str, Any] | None = None) -> str:
    """The page as an HTML document.

    Parameters
    ----------
    trials : pl.DataFrame
        The trial table.
    winner : dict or None
    comparison : list of dict
    sweep_id : str
    settings : dict, optional
        ``sweep.json``'s ``search``, ``scheduler`` and ``timings`` (shown under the verdict).

    Returns
    -------
    str
        A self-contained HTML document (inline CSS; no script, no external resource).
    """
    sentence, tone = verdict(trials, winner, comparison)
    counts = {s: int((trials["status"] == s).sum()) for s in ("finished", "stopped", "failed", "interrupted")}
    settings = settings or {}
    timings = settings.get("timings", {})
    note = (f"{trials.height} trials: {counts['finished']} finished, {counts['stopped']} stopped early, "
            f"{counts['failed']} failed" + (f", {counts['interrupted']} interrupted" if counts["interrupted"] else "")
            + (f"; search {settings['search']}, scheduler {settings['scheduler']}" if "search" in settings else "")
            + (f"; search took {timings['search']:.1f} s" if "search" in timings else "")
            + ". Trials are ranked on the validation split; only the re-runs are scored on the test split.")
    parts = [f"<h1>Sweep {html.escape(sweep_id)}</h1>",
             (f'<section class="rl-verdict rl-{tone}"><p class="rl-sentence">{html.escape(sentence)}</p>'
              f'<p class="rl-note">{html.escape(note)}</p></section>'),
             "<h2>Re-run trials against the base config (test split, paired per user)</h2>",
             frame_html(comparison_view(comparison)),
             "<h2>Trials, best validation first</h2>", frame_html(trial_view(trials))]
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Sweep {html.escape(sweep_id)}'
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>\n")


def write(folder: str | Path, trials: pl.DataFrame, winner: dict | None, comparison: list[dict[str, Any]],
          settings: dict[str, Any] | None = None) -> Path:
    """Write ``<folder>/report.html`` (atomically).

    Parameters
    ----------
    folder : str or Path
        ``runs/sweeps/<id>/``.
    trials : pl.DataFrame
    winner : dict or None
    comparison : list of dict
    settings : dict, optional

    Returns
    -------
    Path
    """
    folder = Path(folder)
    return atomic_write_text(folder / PAGE, render(trials, winner, comparison, sweep_id=folder.name,
                                                  settings=settings))
