"""The verdict card a reviewer reads first in ``report.html``: what happened to the run and why, in words.

One sentence says whether the run was promoted and why (:meth:`Verdict.sentence`); then the model against
production and against the best baseline with the paired 95 % interval ("significantly better / worse" only when
the interval excludes 0), the evaluation users and protocol, the gate, the data checks and the duration against
the SLA (:meth:`Verdict.facts`). :meth:`Verdict.from_run` reads these from what a run recorded; the run layer
renders the card before promoting and again once the promotion is done, so the page says what happened.
"""

from __future__ import annotations

import html as _html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from recsys_lab.config import Config, parse_duration
from recsys_lab.evaluation import keys
from recsys_lab.report.tables import public_text

__all__ = ["Verdict", "significance", "format_duration"]

_STATUS_WORDS = {"failed": "failed", "timed_out": "timed out", "running": "did not finish"}


def significance(lo: float | None, hi: float | None) -> str:
    """How a paired difference model - other reads, from its 95 % interval.

    Parameters
    ----------
    lo, hi : float or None
        The interval's bounds.

    Returns
    -------
    str
        ``significantly better`` (``lo > 0``), ``significantly worse`` (``hi < 0``), else ``not significantly
        different`` (also when a bound is missing).
    """
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "not significantly different"
    return "significantly better" if lo > 0 else "significantly worse" if hi < 0 else "not significantly different"


def format_duration(seconds: float) -> str:
    """``42.0 s``, ``3 min 5 s``, ``26 h``, ``2 h 10 min`` or ``3 d 4 h`` (hours up to two days).

    Parameters
    ----------
    seconds : float
        A duration (negative counts as 0).

    Returns
    -------
    str
        The two largest units, a zero second one left out (seconds with one decimal below a minute).
    """
    s = max(float(seconds), 0.0)
    if s < 60:
        return f"{s:.1f} s"
    s = int(round(s))
    d, h, m, sec = s // 86400, s % 86400 // 3600, s % 3600 // 60, s % 60
    if d >= 2:
        big, small = f"{d} d", f" {h} h" if h else ""
    elif s >= 3600:
        big, small = f"{d * 24 + h} h", f" {m} min" if m else ""
    else:
        big, small = f"{m} min", f" {sec} s" if sec else ""
    return big + small


def _n(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Verdict:
    """What a run recorded, as the verdict card says it.

    Attributes
    ----------
    run_id, status : str
        The run and its status (``succeeded``, ``failed``, ``timed_out``).
    reason : str or None
        Why the run did not succeed (one line).
    gate : dict or None
        ``GateResult.to_dict()``; None when the run recorded none.
    promotion : dict
        ``run.json`` ``promotion``: ``requested``, ``done``, ``reason``.
    metrics : dict
        ``metrics.json``.
    k : int
        ``eval.k``.
    protocol : str or None
        The split method.
    warnings : list of str
        Evaluation warnings.
    validation : dict of str to int or None
        Rows found per data check (``data.json`` ``validation``).
    duration_s : float or None
        Wall seconds of the run.
    sla_s : float or None
        The run's time limit: ``run.max_minutes``, else ``alerts.sla`` (None when both are 0).
    sla_from : str
        Which of the two ``sla_s`` is.
    """

    run_id: str
    status: str
    reason: str | None = None
    gate: dict | None = None
    promotion: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    k: int = keys.DEFAULT_K
    protocol: str | None = None
    warnings: list[str] = field(default_factory=list)
    validation: dict[str, int] | None = None
    duration_s: float | None = None
    sla_s: float | None = None
    sla_from: str = ""

    @classmethod
    def from_run(cls, run_id: str, status: str, *, config: Config, reason: str | None = None,
                 gate: Mapping[str, Any] | None = None, promotion: Mapping[str, Any] | None = None,
                 metrics: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
                 duration_s: float | None = None) -> "Verdict":
        """The verdict of a run from what it recorded (``run.json`` parts, ``metrics.json``, ``data.json``).

        Parameters
        ----------
        run_id, status : str
        config : Config
            The run's configuration (``eval.k``, ``run.max_minutes``, ``alerts.sla``).
        reason : str, optional
            Why the run did not succeed.
        gate, promotion : mapping, optional
            ``run.json`` ``gate`` and ``promotion``.
        metrics : mapping, optional
            ``metrics.json``.
        data : mapping, optional
            ``data.json`` (``split.method``, ``validation``, ``warnings``).
        duration_s : float, optional
            Wall seconds of the run so far.

        Returns
        -------
        Verdict
        """
        data = data or {}
        limit = float(config.run.max_minutes) * 60
        sla_from = "run.max_minutes" if limit else "alerts.sla"
        limit = limit or parse_duration(config.alerts.sla, "alerts.sla")
        return cls(run_id=run_id, status=status, reason=reason, gate=dict(gate) if gate else None,
                   promotion=dict(promotion or {}), metrics=dict(metrics or {}), k=config.eval.k,
                   protocol=(data.get("split") or {}).get("method"), warnings=list(data.get("warnings") or []),
                   validation=data.get("validation"), duration_s=duration_s, sla_s=limit or None, sla_from=sla_from)

    @property
    def kind(self) -> str:
        """``promoted``, ``held`` (passed but not promoted) or ``refused`` (did not succeed or failed its gate)."""
        if self.promotion.get("done") and self.promotion.get("by") == "hand":
            return "promoted"  # by hand, even over a refusal (--force): it is production
        if self.status != "succeeded" or (self.gate or {}).get("passed") is False:
            return "refused"
        return "promoted" if self.promotion.get("done") else "held"

    def sentence(self) -> str:
        """Promoted or not, and why, in one sentence.

        Returns
        -------
        str
            Starts with ``Promoted:``, ``Promoted by hand`` (``recsys-lab runs promote``, ``with --force`` naming what
            it overrode), ``Promoting:`` (the card rendered before the promotion is carried out) or
            ``Not promoted:``; names the run and, when refused, the failure or the gate's reason in full.
        """
        run, gate = f"run {self.run_id}", self.gate or {}
        checks = len(gate.get("checks") or [])
        passed = (f"passed all {checks} gate checks" if checks > 1 else "passed its gate check" if checks
                  else "passed its gate (no check configured)")
        if self.promotion.get("done") and self.promotion.get("by") == "hand":
            forced = self.promotion.get("forced")
            if forced:
                return f"Promoted by hand with --force: {forced}, and it became production."
            return f"Promoted by hand: {run} {passed} and became production (recsys-lab runs promote)."
        if self.status != "succeeded":
            how = _STATUS_WORDS.get(self.status, self.status)
            return f"Not promoted: {run} {how}: {self.reason or 'no reason recorded'}."
        if gate.get("passed") is False:
            return f"Not promoted: {run} failed its gate: {gate.get('reason')}."
        if self.promotion.get("done"):
            return f"Promoted: {run} {passed} and became production."
        if not self.promotion.get("requested"):
            return f"Not promoted: {run} {passed}; promotion was not requested (retrain without --promote)."
        why = str(self.promotion.get("reason") or "")
        if why.startswith("stopped by"):
            return f"Not promoted: {run} {passed} but was {why}."
        if self.gate is None:
            return f"Not promoted: {run} recorded no gate."
        return f"Promoting: {run} {passed}; it becomes production once the promotion is recorded in run.json."

    def _vs(self, name: str) -> str | None:
        ndcg = keys.at("ndcg", self.k)
        key = keys.vs(name, ndcg)
        if key not in self.metrics:
            return None
        lo, hi = (self.metrics.get(b) for b in keys.ci(key))
        other = self.metrics.get(keys.production(ndcg) if name == "production" else keys.model_key(name, ndcg))
        diff = self.metrics[key]
        interval = f"95% interval [{lo:+.3f}, {hi:+.3f}]" if _number(lo) and _number(hi) else "no interval"
        return (f"NDCG@{self.k} {_n(self.metrics.get(ndcg))} against {name}'s {_n(other)}: {significance(lo, hi)} "
                f"({diff:+.3f}, {interval}, paired over the same users)")

    def facts(self) -> list[tuple[str, str]]:
        """The card's lines after the sentence: ``(label, text)``.

        Returns
        -------
        list of (str, str)
            ``Against production``, ``Best baseline``, ``Evaluation``, ``Warning`` (each), ``Gate``, ``Data
            checks``, ``Duration``; lines without a recorded figure are left out (all but the gate, data and
            duration for a run that did not succeed).
        """
        out: list[tuple[str, str]] = []
        m, ndcg = self.metrics, keys.at("ndcg", self.k)
        if m:
            prod = self._vs("production")
            if prod is None:
                seen = any(key.startswith("drift.") for key in m)
                prod = ("production was not re-scored on this split (ndcg@k is not in gate.max_regression)" if seen
                        else "no production run yet: nothing to compare with")
            out.append(("Against production", prod[0].upper() + prod[1:] + "."))
            scored = [b for b in keys.baselines(m) if _number(m.get(keys.model_key(b, ndcg)))]
            if scored:
                best = max(scored, key=lambda b: m[keys.model_key(b, ndcg)])
                line = self._vs(best) or (f"NDCG@{self.k} {_n(m.get(ndcg))} against {best}'s "
                                          f"{_n(m[keys.model_key(best, ndcg)])}")
                out.append(("Best baseline", f"{line}."))
            recall = keys.at("recall", self.k)
            figures = "; ".join(
                f"{name}@{self.k} {_n(m[key])}" + (f" [{_n(m.get(keys.ci(key)[0]))}, {_n(m.get(keys.ci(key)[1]))}]"
                                                  if _number(m.get(keys.ci(key)[0])) else "")
                for name, key in (("NDCG", ndcg), ("recall", recall)) if _number(m.get(key)))
            users = m.get("eval.n_users")
            users = f"{int(users):,} users" if _number(users) else "an unknown number of users"
            split = f", {self.protocol} split" if self.protocol else ""
            out.append(("Evaluation", f"{users}{split}; {figures} (95% intervals over users)."))
        out += [("Warning", w) for w in self.warnings]
        gate = self.gate
        if gate is not None:
            n = len(gate.get("checks") or [])
            checks = f"{n} check{'s' * (n != 1)}" if n else "no check configured"
            out.append(("Gate", f"passed ({checks})." if gate.get("passed") else f"failed: {gate.get('reason')}."))
        out.append(("Data checks", self._data_checks()))
        if _number(self.duration_s):
            took = f"took {format_duration(self.duration_s)}"
            if self.sla_s:
                within = "within" if self.duration_s <= self.sla_s else "OVER"
                took += f", {within} the SLA of {format_duration(self.sla_s)} ({self.sla_from})"
            out.append(("Duration", took[0].upper() + took[1:] + "."))
        return out

    def _data_checks(self) -> str:
        if not self.validation:
            return "not recorded (the run stopped before its data was checked)."
        found = {c: n for c, n in self.validation.items() if n}
        total = len(self.validation)
        if not found:
            return f"all {total} passed (nulls, duplicates, ranges, timestamps, unknown ids, empty log)."
        listed = ", ".join(f"{c} ({n:,} rows)" for c, n in found.items())
        return f"{total - len(found)} of {total} passed; found: {listed} (warn-level: the run went on)."

    def html(self) -> str:
        """The card as an HTML ``<section>`` (styled by :data:`recsys_lab.report.html.CSS`).

        Returns
        -------
        str
            The sentence first, then a definition list of :meth:`facts`, then a note that the executed notebook
            follows. No absolute path of this machine (:func:`recsys_lab.report.tables.public_text`).
        """
        def e(text: str) -> str:
            return _html.escape(public_text(text))

        rows = "".join(f"<dt>{e(label)}</dt><dd>{e(text)}</dd>" for label, text in self.facts())
        return (f'<section class="rl-verdict rl-{self.kind}" id="verdict"><p class="rl-sentence">'
                f"{e(self.sentence())}</p><dl>{rows}</dl><p class=\"rl-note\">Below: the executed retrain "
                f"notebook of run {e(self.run_id)} (code hidden; the run folder's retrain.ipynb has it).</p>"
                "</section>")
