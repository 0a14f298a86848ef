"""The registry over time: one row per run, for the monitoring page (``recsys-lab runs monitor``) and notebooks.

:func:`history` reads every run folder once (manifest and metrics); the metric keys it keeps are named in one place
(:data:`HEAD`, :data:`GROUP_PREFIX`, :data:`DRIFT_PREFIX`), built and parsed with :mod:`recsys_lab.evaluation.keys`. A damaged run is a row with a ``note``, never an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recsys_lab.config import parse_duration
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.evaluation import keys
from recsys_lab.runs.registry import manifest_of, production_id, read_metrics, run_folders
from recsys_lab.store.folder import RunFolder, effective_status

__all__ = ["HEAD", "GROUP_PREFIX", "GROUP_METRIC", "DRIFT_PREFIX", "history"]

HEAD = tuple(key for m in ("ndcg", "recall") for key in (keys.at(m, "k"), *keys.ci(keys.at(m, "k"))))
"""Headline metrics and their 95 % intervals, ``@k`` at each run's own ``eval.k``."""
GROUP_PREFIX, GROUP_METRIC = "fairness.user.", ".ndcg@k."
"""Per-group NDCG: ``fairness.user.<attribute>.ndcg@k.<group>`` (the ``eval.user_groups`` cross-sections)."""
DRIFT_PREFIX = "drift.psi."
"""Drift PSI of the run's data against production's."""


def history(runs_dir: str | Path = "runs") -> pl.DataFrame:
    """Every run as one row, in the order of its data cut-off: the frame behind ``recsys-lab runs monitor``.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory; a missing or empty one gives an empty frame.

    Returns
    -------
    pl.DataFrame
        ``run_id, status, started_at, ended_at, until`` (``data.until``), ``as_of`` (``until``, else
        ``started_at``), ``backfill, production, gate_passed, promoted, reason, k, duration_s, sla_s``
        (``run.max_minutes``, else ``alerts.sla``; null when 0), ``within_sla``, ``note`` (why a damaged run has
        nothing else), then Float64 columns at the run's own ``eval.k``: ``ndcg@k`` and ``recall@k`` with
        ``.ci_low`` / ``.ci_high``, ``fairness.user.<attribute>.ndcg@k.<group>`` (with intervals), ``drift.psi.*``.
    """
    head = HEAD
    runs_dir, rows, extra = Path(runs_dir), [], set()
    prod = production_id(runs_dir)
    for d in run_folders(runs_dir):
        row: dict[str, Any] = {"run_id": d.name, "production": d.name == prod}
        try:
            man, met = manifest_of(d), read_metrics(d) if RunFolder(d).metrics.is_file() else {}
            cfg, gate = man.get("config") or {}, man.get("gate") or {}
            k = keys.k_of(met)
            sla = float((cfg.get("run") or {}).get("max_minutes") or 0) * 60 or parse_duration(
                str((cfg.get("alerts") or {}).get("sla", "0h")), "alerts.sla") or None
            row.update(status=effective_status(man.get("status"), man.get("pid"), man.get("host")),
                       started_at=man.get("started_at"), ended_at=man.get("ended_at"),
                       until=(cfg.get("data") or {}).get("until"), backfill=bool(man.get("backfill")),
                       gate_passed=gate.get("passed"), promoted=bool(man.get("promoted")), k=k,
                       reason=man.get("reason") or gate.get("reason"), sla_s=sla,
                       duration_s=(man.get("timings") or {}).get("total"))
            row["within_sla"] = None if sla is None or row["duration_s"] is None else row["duration_s"] <= sla
            for key, v in met.items():
                name = keys.generic(key, k)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and (name in head or name.startswith(
                        DRIFT_PREFIX) or (name.startswith(GROUP_PREFIX) and GROUP_METRIC in name
                                          and not name.endswith((".n_users", ".gap")))):
                    row[name] = float(v)
                    extra.add(name)
        except (RunError, ConfigError, TypeError, ValueError, AttributeError) as exc:
            why = (str(exc).splitlines() or [type(exc).__name__])[0].replace(f"{d}/", "")  # no absolute path
            row["note"] = f"skipped: {why}"
        row["as_of"] = row.get("until") or row.get("started_at")
        rows.append(row)
    schema = {"run_id": pl.Utf8, "status": pl.Utf8, "started_at": pl.Utf8, "ended_at": pl.Utf8, "until": pl.Utf8,
              "as_of": pl.Utf8, "backfill": pl.Boolean, "production": pl.Boolean, "gate_passed": pl.Boolean,
              "promoted": pl.Boolean, "reason": pl.Utf8, "k": pl.Int64, "duration_s": pl.Float64,
              "sla_s": pl.Float64, "within_sla": pl.Boolean, "note": pl.Utf8,
              **{c: pl.Float64 for c in head + tuple(sorted(extra - set(head)))}}
    df = pl.DataFrame([{c: r.get(c) for c in schema} for r in rows], schema=schema, orient="row")
    return df.sort(["as_of", "started_at", "run_id"], nulls_last=True)
