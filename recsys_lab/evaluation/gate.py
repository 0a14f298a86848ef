"""Metric gate: absolute floors and ceilings, champion/challenger against production, and baselines.

A pure function of metric dicts and paired comparisons, so the notebook (for the report) and the CLI (for the
promotion decision) apply the same rule. Regression checks are paired: production is re-scored on the
candidate's split (:meth:`recsys_lab.pipeline.Retrain.check_gate`) and a check fails only when production is
*significantly* better (the 95 % bootstrap interval of candidate - production lies below 0) **and** the
relative drop exceeds the tolerance: identical retrains no longer fail on noise. The gate fails closed: a
production run whose evidence cannot be read fails every regression check, naming the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import polars as pl

from recsys_lab.config import GateConfig
from recsys_lab.evaluation import keys

__all__ = ["GateResult", "check_gate", "resolved", "for_serving", "best_baseline", "NO_PRODUCTION", "BEST_SINGLE",
           "BLEND_FLOOR"]

NO_PRODUCTION = "no production run"
"""``production_error`` value meaning there is nothing to compare with (regression checks are skipped)."""

BEST_SINGLE = "best_single"
"""``gate.not_worse_than`` entry standing for the baseline with the highest NDCG@k in the run (:func:`best_baseline`)."""


BLEND_FLOOR = "blend.vs.model.ndcg@k.ci_low"
"""Floor :func:`for_serving` adds when a run serves the blend: the lower end of the paired 95 % interval of
blend - model on NDCG@k must be >= 0 (missing or NaN fails, as every floor)."""


def for_serving(gate: GateConfig, serve: str) -> GateConfig:
    """``gate`` with what serving ``serve`` requires: for ``"blend"`` (``rank.serve``), the floor
    ``blend.vs.model.ndcg@k.ci_low >= 0`` (:data:`BLEND_FLOOR`) unless ``gate.min`` sets that key itself.

    Parameters
    ----------
    gate : GateConfig
    serve : str
        ``rank.serve``: ``"model"`` or ``"blend"``.

    Returns
    -------
    GateConfig
        ``gate`` itself for ``"model"``; otherwise a copy whose ``min`` starts with the blend floor.
    """
    if serve != "blend":
        return gate
    return dataclasses.replace(gate, min={BLEND_FLOOR: 0.0, **gate.min})


def best_baseline(metrics: dict[str, float], k: int) -> str | None:
    """The evaluated baseline with the highest ``baseline.<name>.ndcg@k`` (ties: report order), or None.

    Parameters
    ----------
    metrics : dict
        ``metrics.json`` of a run.
    k : int
        ``eval.k``.

    Returns
    -------
    str or None
        Only baselines with a paired difference ``vs.<name>.ndcg@k`` count.
    """
    metric = keys.at("ndcg", k)
    found = [(metrics[keys.model_key(b, metric)], -j, b) for j, b in enumerate(keys.baselines(metrics))
             if _number(metrics.get(keys.model_key(b, metric))) and _number(metrics.get(keys.vs(b, metric)))]
    return max(found)[2] if found else None


@dataclass(frozen=True)
class GateResult:
    """Outcome of :func:`check_gate`.

    Attributes
    ----------
    passed : bool
    checks : list of dict
        One per bound: ``metric, kind ("floor" | "ceiling" | "regression" | "baseline"), value, bound,
        production, passed, message``.
    """

    passed: bool
    checks: list[dict] = field(default_factory=list)

    @property
    def reason(self) -> str | None:
        """The failed checks' messages joined by ``; ``, or None when passed."""
        failed = [c["message"] for c in self.checks if not c["passed"]]
        return "; ".join(failed) if failed else None

    def to_dict(self) -> dict:
        """``{"passed", "reason", "checks"}`` (as saved in ``gate.json`` and ``run.json``).

        Returns
        -------
        dict
            ``passed`` (bool), ``reason`` (str) and ``checks`` (list of dict).
        """
        return {"passed": self.passed, "reason": self.reason, "checks": self.checks}

    @classmethod
    def from_dict(cls, d: dict) -> "GateResult":
        """Inverse of :meth:`to_dict`.

        Parameters
        ----------
        d : dict
            A saved gate (``passed``, ``checks``; ``reason`` is not read: it derives from the checks).

        Returns
        -------
        GateResult
        """
        return cls(passed=bool(d["passed"]), checks=list(d.get("checks") or []))

    def table(self) -> pl.DataFrame:
        """The checks as a frame (for notebooks and reports).

        Returns
        -------
        pl.DataFrame
            ``metric, kind, message`` (Utf8), ``value, bound, production`` (Float64, null when not applicable) and
            ``passed`` (Boolean); one row per check.
        """
        return pl.DataFrame(self.checks, schema={"metric": pl.Utf8, "kind": pl.Utf8, "value": pl.Float64,
                                                 "bound": pl.Float64, "production": pl.Float64,
                                                 "passed": pl.Boolean, "message": pl.Utf8})


def _row(metric: str, kind: str, value, bound, production, passed: bool, message: str) -> dict:  # noqa: ANN001
    return {"metric": metric, "kind": kind, "value": value, "bound": bound, "production": production,
            "passed": bool(passed), "message": message}


def _number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def resolved(gate: GateConfig, k: int) -> GateConfig:
    """A copy of ``gate`` with every ``@k`` of its metric names made concrete (:func:`recsys_lab.evaluation.keys.resolve`).

    Parameters
    ----------
    gate : GateConfig
    k : int
        ``eval.k``.

    Returns
    -------
    GateConfig
        ``min``, ``max`` and ``max_regression`` keys at ``@{k}`` (``ndcg@k`` -> ``ndcg@10``).
    """
    return dataclasses.replace(gate, min=keys.resolve_all(gate.min, k), max=keys.resolve_all(gate.max, k),
                               max_regression=keys.resolve_all(gate.max_regression, k))


def check_gate(metrics: dict[str, float], gate: GateConfig, *, k: int | None = None,
               production: dict[str, dict] | None = None, production_error: str | None = NO_PRODUCTION
               ) -> GateResult:
    """Apply the gate to a candidate.

    Parameters
    ----------
    metrics : dict
        Candidate metrics (``metrics.json``), including the paired differences against baselines
        ``vs.<baseline>.ndcg@k`` with ``.ci_low`` / ``.ci_high``.
    gate : GateConfig
        ``min`` floors, ``max`` ceilings, ``max_regression`` tolerances, ``not_worse_than`` baselines; names
        ending in ``@k`` stand for ``@{k}``.
    k : int, optional
        ``eval.k`` (default: read from the metrics' ``eval.k``).
    production : dict, optional
        Champion/challenger comparison, per metric: the paired difference candidate - production on the
        candidate's split (:func:`recsys_lab.evaluation.intervals.paired_difference` output) plus ``production`` (its
        mean) and ``value`` (the candidate's mean).
    production_error : str or None
        None when ``production`` holds the comparison; :data:`NO_PRODUCTION` when there is no production run
        (regression checks are skipped, saying so); any other text is why production's evidence could not be
        read, and every regression check fails with it (fail closed).

    Returns
    -------
    GateResult
        A missing or non-finite metric fails its floor or ceiling.
    """
    k = keys.k_of(metrics) if k is None else k
    gate = resolved(gate, k)
    checks = []
    for kind, bounds, holds, ok_op, bad_op in (("floor", gate.min, lambda v, b: v >= b, ">=", "<"),
                                               ("ceiling", gate.max, lambda v, b: v <= b, "<=", ">")):
        for metric, bound in bounds.items():
            value = metrics.get(metric)
            if metric.startswith("ann.recall") and metric not in metrics and metrics.get("ann.exact") == 1:
                checks.append(_row(metric, kind, None, bound, None, True,
                                   f"{metric}: skipped: exact search, no index was built"))
                continue
            numeric = _number(value)
            ok = numeric and holds(value, bound)
            msg = (f"{metric} = {value:.4f} {ok_op if ok else bad_op} {kind} {bound}" if numeric else
                   f"{metric} missing from metrics ({kind} {bound})")
            checks.append(_row(metric, kind, value if numeric else None, bound, None, ok, msg))
    for metric, tol in gate.max_regression.items():
        value = metrics.get(metric)
        if production_error == NO_PRODUCTION:
            checks.append(_row(metric, "regression", value, tol, None, True, f"{metric}: skipped: no production run"))
            continue
        if production_error is not None:
            checks.append(_row(metric, "regression", value, tol, None, False,
                               f"{metric}: production cannot be compared ({production_error})"))
            continue
        d = (production or {}).get(metric)
        if not d or not _number(d.get("production")) or not _number(d.get("value")):
            checks.append(_row(metric, "regression", value, tol, None, False,
                               f"{metric}: no paired comparison with production"))
            continue
        prod, new = d["production"], d["value"]
        if not (_number(d.get("ci_low")) and _number(d.get("ci_high"))):  # e.g. one user: no interval, no decision
            checks.append(_row(metric, "regression", new, tol, prod, False,
                               f"{metric} = {new:.4f} vs production {prod:.4f}: the paired 95% interval is undefined "
                               f"({d.get('n_users')} users): too few users to tell, so the gate fails closed"))
            continue
        drop = (prod - new) / prod if prod > 0 else 0.0
        worse = d["ci_high"] < 0
        ok = not (worse and drop > tol)
        verdict = ("production significantly better" if worse else "no significant difference"
                   if not d["significant"] else "significantly better than production")
        msg = (f"{metric} = {new:.4f} vs production {prod:.4f} re-scored on this split ({d['n_users']} users): "
               f"{-drop:+.1%}, paired 95% CI of the difference [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}], "
               f"{verdict}; {'within' if ok else 'exceeds'} max regression {tol:.0%}")
        checks.append(_row(metric, "regression", new, tol, prod, ok, msg))
    metric = keys.at("ndcg", k)
    for wanted in gate.not_worse_than:
        name = best_baseline(metrics, k) if wanted == BEST_SINGLE else wanted
        if name is None:
            checks.append(_row(metric, "baseline", None, None, None, False,
                               f"{metric}: {BEST_SINGLE}: no baseline was evaluated (add some to eval.baselines)"))
            continue
        key = keys.vs(name, metric)
        low, high = keys.ci(key)
        delta, high = metrics.get(key), metrics.get(high)
        if _number(delta) and not (_number(high) and _number(metrics.get(low))):
            checks.append(_row(metric, "baseline", None, None, None, False,
                               f"{metric} vs baseline {name}: {delta:+.4f}, but the paired 95% interval is undefined "
                               "(too few users to tell), so the gate fails closed"))
            continue
        if not (_number(delta) and _number(high)):
            checks.append(_row(metric, "baseline", None, None, None, False,
                               f"{metric}: baseline {name} was not evaluated (add it to eval.baselines or drop it "
                               "from gate.not_worse_than)"))
            continue
        ok = high >= 0
        named = f"{BEST_SINGLE} ({name})" if wanted == BEST_SINGLE else name
        msg = (f"{metric} vs baseline {named}: {delta:+.4f}, paired 95% CI [{metrics.get(low):+.4f}, "
               f"{high:+.4f}]: {'not significantly worse' if ok else 'significantly worse'}")
        checks.append(_row(metric, "baseline", metrics.get(metric), 0.0, None, ok, msg))
    return GateResult(passed=all(c["passed"] for c in checks), checks=checks)
