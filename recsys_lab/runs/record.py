"""Writing down an executed notebook in its run folder: ``report.html``, timings, gate, manifest, then the promotion.

The notebook decided the gate (``gate.json``); nothing here recomputes it: a succeeded run without its gate file
fails closed. Whether the run is promoted is :func:`recsys_lab.runs.outcome.decide`, applied twice: once before the
manifest is written (so ``run.json`` says what is about to happen) and once more right before promoting, since a
stop signal that arrives while the outcome is recorded still cancels the promotion. The promotion itself is
:func:`recsys_lab.runs.production.point` (intent in ``run.json``, then the pointer, then the record); once it is
done, the verdict card of ``report.html`` is replaced so the report says the run was promoted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from recsys_lab.config import Config
from recsys_lab.errors import RecsysLabError, RunError
from recsys_lab.evaluation.gate import GateResult
from recsys_lab.report.html import export_html, replace_verdict
from recsys_lab.report.verdict import Verdict
from recsys_lab.runs.outcome import Decision, decide, error_reason, phases
from recsys_lab.runs.production import point
from recsys_lab.store.folder import RunFolder, read_json_optional, utc_now

__all__ = ["rewrite_verdict", "Outcome", "read_or_empty", "failing_cell", "record", "promote"]

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What :func:`record` wrote down about an executed notebook.

    Attributes
    ----------
    status : str
        ``succeeded``, ``failed`` or ``timed_out``.
    error : dict or None
        The failing cell (``cell_index``, ``exec_count``, ``ename``, ``evalue``); None when the run succeeded.
    reason : str or None
        :func:`recsys_lab.runs.outcome.error_reason` of ``error``.
    requested : bool
        ``--promote`` was given.
    gate : GateResult or None
        The notebook's gate (failing closed without ``gate.json``); None when the run did not succeed.
    metrics : dict
        ``metrics.json`` ({} when the run did not succeed).
    manifest : dict
        ``run.json`` as written.
    config : Config or None
        The run's configuration (for the report's verdict once promoted).
    """

    status: str
    error: dict | None
    reason: str | None
    requested: bool
    gate: GateResult | None = None
    metrics: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    config: Config | None = None

    def decide(self, stopped_by: str | None) -> Decision:
        """The promotion decision for this outcome (:func:`recsys_lab.runs.outcome.decide`).

        Parameters
        ----------
        stopped_by : str or None
            Name of the signal that stopped the run, if one did.

        Returns
        -------
        Decision
        """
        return decide(self.status, requested=self.requested, gate_passed=self.gate.passed if self.gate else None,
                      gate_reason=self.gate.reason if self.gate else None, run_reason=self.reason,
                      stopped_by=stopped_by)


def _promotion(outcome: Outcome, decision: Decision) -> dict[str, Any]:
    """``run.json`` ``promotion`` before the promotion is carried out: ``requested``, not ``done``, and the
    decision's reason (once done, :func:`recsys_lab.runs.production.point` records ``done`` and reason None)."""
    return {"requested": outcome.requested, "done": False, "reason": decision.reason}


def read_or_empty(path: Path, what: str) -> dict:
    """A run file the notebook wrote, {} when missing or damaged (logged): the run's outcome is still recorded.

    Parameters
    ----------
    path : Path
        The file.
    what : str
        What it is, for the logged message.

    Returns
    -------
    dict
        Its JSON content, or {}.
    """
    try:
        return read_json_optional(path, what)
    except RunError as exc:
        log.warning("%s", exc)
        return {}


def failing_cell(nb_path: Path) -> dict:
    """``cell_index`` and ``exec_count`` of the cell marked failed (or still running) in a saved notebook.

    Parameters
    ----------
    nb_path : Path
        The executed notebook.

    Returns
    -------
    dict
        ``{"cell_index", "exec_count"}``, both None when there is no notebook or no such cell.
    """
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # noqa: BLE001 - no notebook, or an unreadable one: no cell to name
        return {"cell_index": None, "exec_count": None}
    for index, cell in enumerate(nb.cells):
        status = cell.get("metadata", {}).get("papermill", {}).get("status")
        if status in ("failed", "running"):
            return {"cell_index": index, "exec_count": cell.get("execution_count")}
    return {"cell_index": None, "exec_count": None}


def _gate(folder: RunFolder) -> GateResult:
    """The notebook's gate; a succeeded run without its gate file fails closed (never recomputed here)."""
    saved = read_or_empty(folder.gate, "gate file")
    if saved:
        return GateResult.from_dict(saved)
    return GateResult(passed=False, checks=[{"metric": None, "kind": "gate", "value": None, "bound": None,
                                             "production": None, "passed": False,
                                             "message": f"{folder.gate} missing: the notebook did not record "
                                                        "its gate"}])


def _verdict(folder: RunFolder, outcome: Outcome, config: Config, data: dict | None, promotion: dict,
             duration_s: float | None) -> Verdict:
    return Verdict.from_run(folder.run_id, outcome.status, config=config, reason=outcome.reason,
                            gate=outcome.gate.to_dict() if outcome.gate else None, promotion=promotion,
                            metrics=outcome.metrics, data=data, duration_s=duration_s)


def rewrite_verdict(folder: RunFolder) -> bool:
    """Render ``report.html``'s verdict card again from what the run recorded (``run.json``, ``metrics.json``):
    after a promotion by hand (``recsys-lab runs promote``) the page says the run is production.

    Parameters
    ----------
    folder : RunFolder

    Returns
    -------
    bool
        Whether the card was replaced (False, logged, when there is no report or it cannot be read or written:
        the promotion itself stands).
    """
    if not folder.report.is_file():
        return False
    try:
        m = folder.manifest()
        verdict = Verdict.from_run(folder.run_id, str(m.get("status")), config=Config.from_dict(m.get("config") or {}),
                                   reason=m.get("reason"), gate=m.get("gate"), promotion=m.get("promotion") or {},
                                   metrics=read_json_optional(folder.metrics, "metrics"), data=m.get("data"),
                                   duration_s=(m.get("timings") or {}).get("total"))
        return replace_verdict(folder.report, verdict.html())
    except (RecsysLabError, OSError) as exc:
        log.warning("report.html not updated after the promotion: %s", exc)
        return False


def _report(folder: RunFolder, outcome: Outcome, config: Config, data: dict | None, decision: Decision,
            duration_s: float) -> None:
    """``report.html``: the executed notebook with the verdict first (logged, not raised, when it fails)."""
    if not folder.notebook.is_file():
        return
    try:
        export_html(folder.notebook, folder.report, title=f"recsys_lab run {folder.run_id}",
                    verdict=_verdict(folder, outcome, config, data, _promotion(outcome, decision), duration_s).html())
    except (RunError, OSError) as exc:
        log.warning("no report.html: %s", exc)


def record(folder: RunFolder, config: Config, result: dict, *, wall: float, t0: float, requested: bool,
           stopped_by: Callable[[], str | None]) -> Outcome:
    """Write the outcome of an executed notebook: report, timings, gate and manifest (promotion not yet done).

    Parameters
    ----------
    folder : RunFolder
        The run folder.
    config : Config
        The run's configuration (``eval.k`` for the verdict).
    result : dict
        The engine's result: ``status`` and, when failed, ``cell_index``, ``exec_count``, ``ename``, ``evalue``.
    wall : float
        Wall seconds of the notebook's execution.
    t0 : float
        ``time.perf_counter()`` when the execution started (for ``timings.total``).
    requested : bool
        ``--promote`` was given.
    stopped_by : callable
        Returns the name of the signal that stopped the run so far (None: none).

    Returns
    -------
    Outcome
        What was written; ``manifest.promotion`` holds the decision taken (see :func:`promote`).

    Raises
    ------
    OSError
        The run folder could not be written (e.g. disk full).
    """
    status = result["status"]
    error = None if status == "succeeded" else {k: result.get(k) for k in ("cell_index", "exec_count", "ename",
                                                                           "evalue")}
    outcome = Outcome(status=status, error=error, reason=error_reason(error) if error else None, requested=requested)
    if status == "succeeded":
        outcome.metrics = read_or_empty(folder.metrics, "metrics file")
        outcome.gate = _gate(folder)
    data = read_or_empty(folder.data, "data file") or None
    outcome.config = config
    t_report = time.perf_counter()
    _report(folder, outcome, config, data, outcome.decide(stopped_by()), t_report - t0)
    timings, details = phases(read_or_empty(folder.timings, "timings file"), wall)
    timings["report"] = round(time.perf_counter() - t_report, 4)
    timings["total"] = round(time.perf_counter() - t0, 4)
    outcome.manifest = folder.update(status=status, ended_at=utc_now(), data=data, timings=timings,
                                     timing_details=details, error=error, reason=outcome.reason,
                                     gate=outcome.gate.to_dict() if outcome.gate else None,
                                     promotion=_promotion(outcome, outcome.decide(stopped_by())))
    return outcome


def promote(folder: RunFolder, outcome: Outcome, *, stopped_by: Callable[[], str | None]) -> bool:
    """Carry out the promotion decision (taken again: a signal since :func:`record` cancels it) and record it.

    Parameters
    ----------
    folder : RunFolder
        The run folder.
    outcome : Outcome
        From :func:`record`; its ``manifest`` is updated in place.
    stopped_by : callable
        Returns the name of the signal that stopped the run so far (None: none).

    Returns
    -------
    bool
        Whether the run is now production.

    Raises
    ------
    OSError
        ``runs/PRODUCTION`` or the manifest could not be written (the promotion intent in ``run.json`` is settled
        by :func:`recsys_lab.runs.production.reconcile` at the next start).
    """
    decision = outcome.decide(stopped_by())
    if decision.promote:  # intent, pointer, record: a kill in between is settled by the next start
        outcome.manifest = point(folder.runs_dir, folder.run_id)
        if outcome.config is not None and folder.report.is_file():  # the report says what happened
            try:
                replace_verdict(folder.report, _verdict(folder, outcome, outcome.config, outcome.manifest.get("data"),
                                                        outcome.manifest.get("promotion") or {},
                                                        (outcome.manifest.get("timings") or {}).get("total")).html())
            except OSError as exc:
                log.warning("report.html not updated after the promotion: %s", exc)
        return True
    if outcome.manifest.get("promotion") != _promotion(outcome, decision):
        outcome.manifest = folder.update(promotion=_promotion(outcome, decision))
    return False
