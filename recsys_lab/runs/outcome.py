"""The outcome of a run, read from what it recorded: the one promotion rule, the one-line failure reason, the phases.

Everything here is a pure function of recorded values (status, gate result, promotion request, stop signal,
timings); nothing reads or writes a file. The promotion rule is written once, in :func:`blocker`: a run may become
production only when it succeeded and its recorded gate did not fail. :func:`decide` applies it to a retrain that
asked for ``--promote`` (and was not stopped first); :func:`refusal` applies it to ``recsys-lab runs promote``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["PHASES", "PROMOTING", "Decision", "blocker", "decide", "refusal", "error_reason", "phases"]

PHASES = ("ingest", "features", "fit", "index", "evaluate", "rank", "save")
"""Work phases timed inside the notebook (seconds in ``run.json`` ``timings``); ``index`` excludes ``compile``;
``rank`` is the ranking stage (``rank.enabled``)."""
PROMOTING = "gate passed; promoting"
"""``promotion.reason`` recorded while a promotion is being carried out (None once done)."""


@dataclass(frozen=True)
class Decision:
    """Whether a finished retrain is promoted, and the reason recorded in ``run.json`` ``promotion``.

    Attributes
    ----------
    promote : bool
        Carry out the promotion.
    kind : str
        ``"not_requested"``, ``"status"`` (the run did not succeed), ``"stopped"`` (a signal came before the
        promotion), ``"gate"`` (the gate failed) or ``"promote"``.
    reason : str
        The recorded ``promotion.reason`` (:data:`PROMOTING` when ``promote``).
    """

    promote: bool
    kind: str
    reason: str


def blocker(status: str | None, gate_passed: bool | None) -> str | None:
    """The promotion rule: what keeps a run from becoming production.

    Parameters
    ----------
    status : str or None
        The run's (effective) status.
    gate_passed : bool or None
        The recorded gate's ``passed``; None when the run recorded no gate (a manual promotion may still go ahead;
        a retrain always records one, failing closed without its gate file).

    Returns
    -------
    str or None
        ``"status"`` when the run did not succeed, ``"gate"`` when its gate failed, None when it may be promoted.
    """
    if status != "succeeded":
        return "status"
    if gate_passed is False:
        return "gate"
    return None


def decide(status: str, *, requested: bool, gate_passed: bool | None, gate_reason: str | None = None,
           run_reason: str | None = None, stopped_by: str | None = None) -> Decision:
    """Whether a finished retrain is promoted (:func:`blocker`, for a run that asked for it and was not stopped).

    Parameters
    ----------
    status : str
        ``succeeded``, ``failed`` or ``timed_out``.
    requested : bool
        ``--promote`` was given.
    gate_passed : bool or None
        The gate's outcome (None when the run did not succeed: no gate).
    gate_reason : str, optional
        The failed checks' messages.
    run_reason : str, optional
        The run's one-line failure reason.
    stopped_by : str, optional
        Name of the signal (``SIGTERM``...) that stopped the run, if one did.

    Returns
    -------
    Decision
        Reasons, in this order: ``not requested``; ``the run STATUS: REASON``; ``stopped by SIGNAL before
        promotion``; ``gate failed: REASON``; else :data:`PROMOTING`.
    """
    if not requested:
        return Decision(False, "not_requested", "not requested")
    block = blocker(status, gate_passed)
    if block == "status":
        return Decision(False, "status", f"the run {status}: {run_reason}")
    if stopped_by is not None:
        return Decision(False, "stopped", f"stopped by {stopped_by} before promotion")
    if block == "gate":
        return Decision(False, "gate", f"gate failed: {gate_reason}")
    return Decision(True, "promote", PROMOTING)


def refusal(run_id: str, status: str | None, gate: Mapping[str, Any] | None) -> str | None:
    """Why ``recsys-lab runs promote RUN`` (without ``--force``) refuses a run (:func:`blocker`).

    Parameters
    ----------
    run_id : str
        The run id, for the message.
    status : str or None
        The run's effective status.
    gate : mapping or None
        The manifest's ``gate`` (``passed``, ``reason``); None or empty when not recorded.

    Returns
    -------
    str or None
        The one-line refusal, or None when the run may be promoted.
    """
    gate = gate if isinstance(gate, Mapping) else {}
    block = blocker(status, bool(gate.get("passed", True)) if gate else None)
    if block == "status":
        return f"run {run_id} is {status}: refusing to promote (use --force)"
    if block == "gate":
        return f"run {run_id} failed its gate ({gate.get('reason')}): refusing to promote (use --force)"
    return None


def error_reason(error: Mapping[str, Any]) -> str:
    """``cell N (Ename): value`` on one line.

    Parameters
    ----------
    error : mapping
        ``cell_index``, ``exec_count``, ``ename``, ``evalue`` of the failing cell.

    Returns
    -------
    str
        N is the execution count, else (a cell stopped before its kernel numbered it) ``index I`` of the cell in the
        notebook; no cell part when neither is known. Only the first line of the value is kept.
    """
    if error.get("exec_count") is not None:
        where = f"cell {error['exec_count']} "
    elif error.get("cell_index") is not None:
        where = f"cell index {error['cell_index']} "
    else:
        where = ""
    return f"{where}({error['ename']}): {error['evalue']}".strip().splitlines()[0]


def phases(timings: Mapping[str, float], wall: float) -> tuple[dict[str, float], dict[str, float]]:
    """Work phases (``compile`` split out of ``index``), ``overhead`` = wall - work, and the details.

    Parameters
    ----------
    timings : mapping of str to float
        ``timings.json`` as the notebook wrote it (phases and ``phase.detail`` entries, seconds).
    wall : float
        Wall seconds of the notebook's execution.

    Returns
    -------
    phases : dict of str to float
        The :data:`PHASES` present, ``compile`` (``index.numba_compile``, taken out of ``index``) and ``overhead``.
    details : dict of str to float
        Every other entry.
    """
    out = {k: round(v, 4) for k, v in timings.items() if k in PHASES}
    details = {k: round(v, 4) for k, v in timings.items() if k not in PHASES}
    compile_s = float(timings.get("index.numba_compile") or 0.0)
    if "index" in out:
        compile_s = min(compile_s, out["index"])
        out["index"] = round(out["index"] - compile_s, 4)
    out["compile"] = round(compile_s, 4)
    out["overhead"] = round(max(wall - sum(out.values()), 0.0), 4)
    return out, details
