"""Data guardrails and drift: DuckDB SQL checks before a snapshot is used, PSI against production's data.

Guardrails: every check is one SQL query over the canonical tables; all checks run, and a failure raises
one :class:`DataValidationError` listing each failed check with its count and up to five example rows.
Which checks only warn is configurable (``[validate] warn``).

Drift: the Population Stability Index, ``PSI = sum_b (p_b - q_b) * ln(p_b / q_b)`` over bins ``b`` of a
reference distribution ``q`` and a new one ``p`` (Yurdakul, "Statistical Properties of Population Stability
Index", 2018, https://scholarworks.wmich.edu/dissertations/3208). Bands: < 0.1 stable, 0.1-0.25 moderate,
> 0.25 major.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl

from recsys_lab.config import CHECK_NAMES, ValidateConfig
from recsys_lab.errors import DataValidationError, RecsysLabWarning

__all__ = ["CHECKS", "ValidationReport", "DataQualityWarning", "validate", "clean", "psi", "psi_band", "drift"]

log = logging.getLogger(__name__)

CHECKS = {
    "null_keys": ("interactions", "rows with a null user_id, item_id{ts_name} or weight",
                  "SELECT * FROM interactions WHERE user_id IS NULL OR item_id IS NULL OR weight IS NULL{ts_null}"),
    "duplicates": ("interactions", "duplicate (user_id, item_id{ts_name}) rows beyond the first",
                   "SELECT user_id, item_id, ts, count(*) AS copies FROM interactions "
                   "WHERE user_id IS NOT NULL AND item_id IS NOT NULL{ts_not_null} "
                   "GROUP BY user_id, item_id, ts HAVING count(*) > 1"),
    "weight_range": ("interactions", "weights outside {range}",
                     "SELECT * FROM interactions WHERE weight < {lo} OR weight > {hi} OR isnan(weight)"),
    "future_ts": ("interactions", "timestamps more than {days} day(s) in the future",
                  "SELECT * FROM interactions WHERE ts > now() + INTERVAL {days} DAY"),
    "old_ts": ("interactions", "timestamps before {year}-01-01 (implausibly old)",
               "SELECT * FROM interactions WHERE ts < make_timestamptz({year}, 1, 1, 0, 0, 0, 'UTC')"),
    "unknown_users": ("interactions", "interactions whose user_id is not in the users table",
                      "SELECT i.* FROM interactions i ANTI JOIN users u ON i.user_id = u.user_id "
                      "WHERE i.user_id IS NOT NULL"),
    "unknown_items": ("interactions", "interactions whose item_id is not in the items table",
                      "SELECT i.* FROM interactions i ANTI JOIN items t ON i.item_id = t.item_id "
                      "WHERE i.item_id IS NOT NULL"),
    "user_table_keys": ("users", "null or duplicate user_id in the users table",
                        "SELECT user_id, count(*) AS copies FROM users GROUP BY user_id "
                        "HAVING user_id IS NULL OR count(*) > 1"),
    "item_table_keys": ("items", "null or duplicate item_id in the items table",
                        "SELECT item_id, count(*) AS copies FROM items GROUP BY item_id "
                        "HAVING item_id IS NULL OR count(*) > 1"),
    "empty": ("interactions", "no positive interaction left after filtering (weight {transform} >= {threshold})",
              "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM interactions WHERE user_id IS NOT NULL AND "
              "item_id IS NOT NULL{ts_not_null} AND {weight_expr} >= {threshold})"),
}
"""Guardrail name -> (table, what it finds, DuckDB SQL returning the offending rows)."""
assert tuple(CHECKS) == CHECK_NAMES, "config.CHECK_NAMES must list the checks of validate.CHECKS"


class DataQualityWarning(RecsysLabWarning):
    """A guardrail configured to warn found problems."""


@dataclass
class ValidationReport:
    """Outcome of :func:`validate`.

    Attributes
    ----------
    results : list of dict
        One per check: ``check, table, description, count, severity ("fail" | "warn"), examples`` (up to
        five offending rows as dicts).
    """

    results: list[dict] = field(default_factory=list)

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.results if r["count"] and r["severity"] == "fail"]

    @property
    def warned(self) -> list[dict]:
        return [r for r in self.results if r["count"] and r["severity"] == "warn"]

    def table(self) -> pl.DataFrame:
        """One row per check (for notebooks and reports).

        Returns
        -------
        pl.DataFrame
            ``check, table, count, severity, description``, one row per check run (failed or not).
        """
        return pl.DataFrame([{k: r[k] for k in ("check", "table", "count", "severity", "description")}
                             for r in self.results])

    def to_dict(self) -> dict[str, int]:
        """``{check: count}`` for run manifests.

        Returns
        -------
        dict of str to int
            Rows found by each check (0 when it passed).
        """
        return {r["check"]: r["count"] for r in self.results}

    def message(self) -> str:
        """Every failed check with its count on the first line, then one line per check with examples.

        Returns
        -------
        str
            Newline-separated lines; only the failed checks are listed.
        """
        lines = ["data validation failed: " + ", ".join(f"{r['check']} ({r['count']} {r['table']} rows)"
                                                         for r in self.failed)]
        for r in self.failed:
            lines.append(f"- {r['check']} ({r['table']}): {r['count']} {r['description']}")
            for ex in r["examples"]:
                lines.append(f"    e.g. {ex}")
        return "\n".join(lines)


def _weight_expr(transform: str) -> str:
    return "ln(1 + weight)" if transform == "log1p" else "weight"


def validate(interactions: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame, config: ValidateConfig | None = None,
             *, weight_range: tuple[float, ...] = (), positive_threshold: float = 0.0, weight_transform: str = "none",
             source: str = "", has_time: bool = True) -> ValidationReport:
    """Run every guardrail; raise if a fail-level check finds anything.

    Parameters
    ----------
    interactions, users, items : pl.DataFrame
        Canonical tables (:class:`recsys_lab.data.sources.Tables`).
    config : ValidateConfig, optional
        Which checks only warn, the oldest plausible year, the allowed future skew in days.
    weight_range : tuple
        ``(min, max)`` of the raw weight, or ``()`` for ``weight >= 0``.
    positive_threshold : float
        Threshold on the transformed weight for the ``empty`` check.
    weight_transform : str
        ``"none"`` or ``"log1p"``.
    source : str
        Named in the error message.
    has_time : bool
        False for a log without timestamps (``ts`` all null): the timestamp rules are not applied.

    Returns
    -------
    ValidationReport
        When nothing failed (warn-level findings are logged and warned with :class:`DataQualityWarning`).

    Raises
    ------
    DataValidationError
        One or more fail-level checks found rows; ``failures`` lists them with counts and examples.
    """
    config = config or ValidateConfig()
    lo, hi = weight_range if weight_range else (0.0, float("inf"))
    fmt = {"lo": lo, "hi": "'inf'::DOUBLE" if math.isinf(hi) else hi,
           "range": f"[{lo}, {hi}]" if weight_range else "[0, inf)",
           "days": config.max_future_days, "year": config.min_year, "threshold": positive_threshold,
           "transform": "" if weight_transform == "none" else f"({weight_transform})",
           "weight_expr": _weight_expr(weight_transform),
           "ts_name": ", ts" if has_time else "", "ts_null": " OR ts IS NULL" if has_time else "",
           "ts_not_null": " AND ts IS NOT NULL" if has_time else ""}
    report = ValidationReport()
    with duckdb.connect() as con:
        con.register("interactions", interactions)
        con.register("users", users)
        con.register("items", items)
        for name, (table, description, sql) in CHECKS.items():
            query = sql.format(**fmt)
            count_sql = (f"SELECT coalesce(sum(copies - 1), 0) AS n FROM ({query})" if "copies" in sql
                         else f"SELECT count(*) AS n FROM ({query})")
            count = int(con.sql(count_sql).pl()["n"][0])
            examples = con.sql(f"SELECT * FROM ({query}) LIMIT 5").pl().to_dicts() if count else []
            report.results.append({"check": name, "table": table, "description": description.format(**fmt),
                                   "count": count, "severity": "warn" if name in config.warn else "fail",
                                   "examples": [{k: str(v) for k, v in ex.items()} for ex in examples]})
    for r in report.warned:
        msg = f"{source}: {r['check']}: {r['count']} {r['description']}"
        log.warning("%s", msg)
        warnings.warn(msg, DataQualityWarning, stacklevel=2)
    if report.failed:
        raise DataValidationError(f"{source}: " + report.message() if source else report.message(),
                                  failures=report.failed)
    return report


def clean(interactions: pl.DataFrame, *, has_time: bool = True) -> pl.DataFrame:
    """Drop interactions that cannot be indexed (null ids, or timestamp when the log has them) or weighed.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_id, item_id, weight`` and, when ``has_time``, ``ts``.
    has_time : bool
        Whether the log has timestamps (rows with a null ``ts`` are then dropped too).

    Returns
    -------
    pl.DataFrame
        The rows with none of those columns null; other columns unchanged.
    """
    return interactions.drop_nulls(["user_id", "item_id", "weight"] + (["ts"] if has_time else []))


# -- drift -----------------------------------------------------------------------------------------------
def psi(reference: np.ndarray, new: np.ndarray, *, eps: float = 1e-4) -> float:
    """Population Stability Index between two histograms over the same bins.

    Parameters
    ----------
    reference, new : ndarray of shape (n_bins,)
        Counts or shares per bin (normalised here); bins empty in one side get ``eps`` share.

    Returns
    -------
    float
        ``sum (p - q) * ln(p / q)``; 0 for identical distributions.
    """
    q = np.asarray(reference, dtype=np.float64)
    p = np.asarray(new, dtype=np.float64)
    if q.sum() <= 0 or p.sum() <= 0:
        return float("nan")
    q = np.maximum(q / q.sum(), eps)
    p = np.maximum(p / p.sum(), eps)
    return float(np.sum((p - q) * np.log(p / q)))


def psi_band(value: float) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1-0.25) or ``major`` (> 0.25).

    Parameters
    ----------
    value : float
        Population stability index.

    Returns
    -------
    str
        The band; ``n/a`` for NaN.
    """
    if value != value:
        return "n/a"
    return "stable" if value < 0.1 else "moderate" if value <= 0.25 else "major"


def _categorical_psi(ref: pl.Series, new: pl.Series) -> float:
    r = ref.drop_nulls().value_counts()
    n = new.drop_nulls().value_counts()
    name = ref.name
    both = r.join(n, on=name, how="full", coalesce=True, suffix="_new").fill_null(0)
    return psi(both["count"].to_numpy(), both["count_new"].to_numpy())


def _numeric_psi(ref: np.ndarray, new: np.ndarray, bins: int = 10) -> float:
    ref, new = ref[np.isfinite(ref)], new[np.isfinite(new)]
    if len(ref) == 0 or len(new) == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(new == edges[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    return psi(np.histogram(ref, edges)[0], np.histogram(new, edges)[0])


def _same_id_types(reference: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]
                   ) -> tuple[dict[str, pl.DataFrame], dict[str, pl.DataFrame]]:
    """Cast ids to text on both sides when one snapshot has integer ids and the other text ids."""
    out_r, out_n = dict(reference), dict(new)
    for key, tables in (("user_id", ("interactions", "users")), ("item_id", ("interactions", "items"))):
        if reference["interactions"].schema[key] != new["interactions"].schema[key]:
            for t in tables:
                out_r[t] = out_r[t].with_columns(pl.col(key).cast(pl.Utf8))
                out_n[t] = out_n[t].with_columns(pl.col(key).cast(pl.Utf8))
    return out_r, out_n


def drift(reference: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame], *, user_columns: tuple[str, ...] = (),
          item_columns: tuple[str, ...] = ()) -> dict[str, float]:
    """Drift of a new snapshot against a reference (production's) snapshot.

    Parameters
    ----------
    reference, new : dict
        ``{"interactions", "users", "items"}`` canonical tables.
    user_columns, item_columns : tuple of str
        Side-feature columns whose distributions are compared (list columns are exploded).

    Returns
    -------
    dict
        ``drift.psi.item_popularity`` (share of interactions per item), ``drift.psi.user_activity``
        (interactions per user, 10 quantile bins of the reference), ``drift.psi.weight``,
        ``drift.psi.user.<col>`` and ``drift.psi.item.<col>`` per side feature (share of interactions per
        value), ``drift.new_user_share`` / ``drift.new_item_share`` (share of the new interactions whose user
        / item has no interaction in the reference), ``drift.catalog_churn`` (1 - Jaccard of the two item
        tables' ids).
    """
    reference, new = _same_id_types(reference, new)
    ri, ni = reference["interactions"], new["interactions"]
    out = {
        "drift.psi.item_popularity": _categorical_psi(ri["item_id"], ni["item_id"]),
        "drift.psi.user_activity": _numeric_psi(ri.group_by("user_id").len()["len"].to_numpy().astype(float),
                                                ni.group_by("user_id").len()["len"].to_numpy().astype(float)),
        "drift.psi.weight": _categorical_psi(ri["weight"], ni["weight"]) if ni["weight"].n_unique() <= 20
        else _numeric_psi(ri["weight"].to_numpy(), ni["weight"].to_numpy()),
    }
    for kind, key, cols in (("user", "user_id", user_columns), ("item", "item_id", item_columns)):
        for col in cols:
            tr, tn = reference[f"{kind}s"], new[f"{kind}s"]
            if col not in tr.columns or col not in tn.columns:
                continue
            per_r = ri.join(tr.select(key, col), on=key, how="inner")[col]
            per_n = ni.join(tn.select(key, col), on=key, how="inner")[col]
            if isinstance(per_r.dtype, pl.List):
                per_r, per_n = per_r.explode(), per_n.explode()
            if per_r.dtype.is_numeric():
                value = _numeric_psi(per_r.to_numpy().astype(float), per_n.to_numpy().astype(float))
            else:
                value = _categorical_psi(per_r.cast(pl.Utf8), per_n.cast(pl.Utf8))
            out[f"drift.psi.{kind}.{col}"] = value
    out["drift.new_user_share"] = float((~ni["user_id"].is_in(ri["user_id"].unique().implode())).mean())
    out["drift.new_item_share"] = float((~ni["item_id"].is_in(ri["item_id"].unique().implode())).mean())
    ref_items, new_items = reference["items"]["item_id"].unique(), new["items"]["item_id"].unique()
    shared = int(new_items.is_in(ref_items.implode()).sum())
    union = len(ref_items) + len(new_items) - shared
    out["drift.catalog_churn"] = float(1 - shared / union) if union else 0.0
    return out
