"""Data guardrails: DuckDB SQL checks before a snapshot is used.

Every check is one SQL query over the canonical tables; all checks run, and a failure raises one
:class:`DataValidationError` listing each failed check with its count and up to five example rows. Which checks
only warn is configurable (``[validate] warn``). The check names are :data:`recsys_lab.config.CHECK_NAMES`.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import duckdb
import polars as pl

from recsys_lab.config import CHECK_NAMES, ValidateConfig
from recsys_lab.data import weights
from recsys_lab.data.drift import drift, psi, psi_band  # noqa: F401 - moved to data.drift; pipeline still imports them here
from recsys_lab.errors import DataValidationError, RecsysLabWarning

__all__ = ["CHECKS", "ValidationReport", "DataQualityWarning", "validate", "clean"]

log = logging.getLogger(__name__)

_QUERIES = {
    "null_keys": ("interactions", "rows with a null user_id, item_id{ts_name} or weight",
                  "SELECT * FROM interactions WHERE user_id IS NULL OR item_id IS NULL OR weight IS NULL{ts_null}"),
    "duplicates": ("interactions", "duplicate (user_id, item_id{ts_name}) rows beyond the first",
                   "SELECT user_id, item_id, ts, count(*) AS copies FROM interactions "
                   "WHERE user_id IS NOT NULL AND item_id IS NOT NULL{ts_not_null} "
                   "GROUP BY user_id, item_id, ts HAVING count(*) > 1"),
    "weight_range": ("interactions", "weights outside {range}",
                     "SELECT * FROM interactions WHERE weight < $lo OR weight > $hi OR isnan(weight)"),
    "future_ts": ("interactions", "timestamps more than {days} day(s) in the future",
                  "SELECT * FROM interactions WHERE ts > now() + to_days(CAST($days AS INTEGER))"),
    "old_ts": ("interactions", "timestamps before {year}-01-01 (implausibly old)",
               "SELECT * FROM interactions WHERE ts < make_timestamptz(CAST($year AS BIGINT), 1, 1, 0, 0, 0, 'UTC')"),
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
              "item_id IS NOT NULL{ts_not_null} AND {positive})"),
}

CHECKS = {name: _QUERIES[name] for name in CHECK_NAMES}
"""Guardrail name (:data:`recsys_lab.config.CHECK_NAMES`, in its order) -> (table, what it finds, DuckDB SQL
returning the offending rows)."""


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


def validate(interactions: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame, config: ValidateConfig | None = None,
             *, weight_range: tuple[float, ...] = (), positive_threshold: float = 0.0, weight_transform: str = "none",
             source: str = "", has_time: bool = True) -> ValidationReport:
    """Run every guardrail; raise if a fail-level check finds anything.

    Parameters
    ----------
    interactions, users, items : pl.DataFrame
        Canonical tables (:class:`recsys_lab.data.tables.Tables`).
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
    # numbers are bound parameters ($name), never pasted into the SQL text; fmt fills the descriptions
    params = {"lo": float(lo), "hi": float(hi), "days": int(config.max_future_days), "year": int(config.min_year),
              "threshold": float(positive_threshold)}
    fmt = {"range": f"[{lo}, {hi}]" if weight_range else "[0, inf)",
           "days": config.max_future_days, "year": config.min_year, "threshold": positive_threshold,
           "transform": "" if weight_transform == "none" else f"({weight_transform})",
           "positive": weights.is_positive_sql("$threshold", transform_name=weight_transform),
           "ts_name": ", ts" if has_time else "", "ts_null": " OR ts IS NULL" if has_time else "",
           "ts_not_null": " AND ts IS NOT NULL" if has_time else ""}
    report = ValidationReport()
    with duckdb.connect() as con:
        con.register("interactions", interactions)
        con.register("users", users)
        con.register("items", items)
        for name, (table, description, sql) in CHECKS.items():
            query = sql.format(**fmt)
            bound = {k: v for k, v in params.items() if f"${k}" in query}
            count_sql = (f"SELECT coalesce(sum(copies - 1), 0) AS n FROM ({query})" if "copies" in sql
                         else f"SELECT count(*) AS n FROM ({query})")
            count = int(con.sql(count_sql, params=bound).pl()["n"][0])
            examples = con.sql(f"SELECT * FROM ({query}) LIMIT 5", params=bound).pl().to_dicts() if count else []
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
