"""Metric gate: absolute floors and maximum relative regression against production.

A pure function of metric dicts, so the notebook (for the report) and the CLI (for the promotion decision)
apply the same rule. All gated metrics are higher-is-better (NDCG, recall, AUC, coverage, ANN recall).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from .config import GateConfig

__all__ = ["GateResult", "check_gate"]


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`check_gate`.

    Attributes
    ----------
    passed : bool
    checks : list of dict
        One per bound: ``metric, kind ("floor" | "ceiling" | "regression"), value, bound, production, passed,
        message``.
    """

    passed: bool
    checks: list[dict] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """One line naming the first failed check (metric, value, bound), or None when passed."""
        failed = [c["message"] for c in self.checks if not c["passed"]]
        return "; ".join(failed) if failed else None

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "checks": self.checks}

    def table(self) -> pl.DataFrame:
        """The checks as a frame (for notebooks and reports)."""
        return pl.DataFrame(self.checks, schema={"metric": pl.Utf8, "kind": pl.Utf8, "value": pl.Float64,
                                                 "bound": pl.Float64, "production": pl.Float64,
                                                 "passed": pl.Boolean, "message": pl.Utf8})


def check_gate(metrics: dict[str, float], gate: GateConfig, production: dict[str, float] | None = None) -> GateResult:
    """Apply the gate to a candidate's metrics.

    Parameters
    ----------
    metrics : dict
        Candidate metrics (``metrics.json``).
    gate : GateConfig
        ``min`` floors (``metric >= bound``), ``max`` ceilings (``metric <= bound``, e.g. drift PSI) and
        ``max_regression`` (relative: ``(prod - new) / prod <= bound``).
    production : dict, optional
        Production's metrics; without them the regression checks pass with a note.

    Returns
    -------
    GateResult
        A missing or non-finite metric fails its floor.
    """
    checks = []
    for kind, bounds, holds, ok_op, bad_op in (("floor", gate.min, lambda v, b: v >= b, ">=", "<"),
                                               ("ceiling", gate.max, lambda v, b: v <= b, "<=", ">")):
        for metric, bound in bounds.items():
            value = metrics.get(metric)
            numeric = isinstance(value, (int, float)) and value == value
            ok = numeric and holds(value, bound)
            msg = (f"{metric} = {value:.4f} {ok_op if ok else bad_op} {kind} {bound}" if numeric else
                   f"{metric} missing from metrics ({kind} {bound})")
            checks.append({"metric": metric, "kind": kind, "value": value if numeric else None, "bound": bound,
                           "production": None, "passed": bool(ok), "message": msg})
    for metric, tol in gate.max_regression.items():
        value = metrics.get(metric)
        prod = (production or {}).get(metric)
        if not isinstance(prod, (int, float)) or prod <= 0:
            checks.append({"metric": metric, "kind": "regression", "value": value, "bound": tol, "production": prod,
                           "passed": True, "message": f"{metric}: no production value to compare with"})
            continue
        if not isinstance(value, (int, float)) or value != value:
            checks.append({"metric": metric, "kind": "regression", "value": None, "bound": tol, "production": prod,
                           "passed": False, "message": f"{metric} missing from metrics (production {prod:.4f})"})
            continue
        drop = (prod - value) / prod
        ok = drop <= tol
        checks.append({"metric": metric, "kind": "regression", "value": value, "bound": tol, "production": prod,
                       "passed": ok,
                       "message": (f"{metric} = {value:.4f} vs production {prod:.4f}: "
                                   f"{'-' if drop >= 0 else '+'}{abs(drop):.1%} "
                                   f"{'within' if ok else 'exceeds'} max regression {tol:.1%}")})
    return GateResult(passed=all(c["passed"] for c in checks), checks=checks)
