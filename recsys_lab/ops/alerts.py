"""Alerts: the rules that decide what a finished retrain (or ``runs check``) tells people, and the channels.

:func:`run_alerts` applies the rules of ``[alerts]`` (:class:`recsys_lab.config.AlertsConfig`) to a run folder:
the run failed, timed out or was stopped by a signal; the gate refused it (naming its failed checks from
``gate.json``); it was promoted (off by default); a drift measure above its bound; a metric below its floor or
significantly below the median of the last production runs (the run's 95 % interval lies below the median:
``ci_high < median``). :func:`deliver` sends each alert, one short message with the run id, the reason and the
report's path or URL, to every Apprise URL (``alerts.urls``; apprise is imported here and nowhere else) and to
``alerts.command``; :func:`record` writes what was sent, to whom and whether it was delivered to ``alerts.json``.
:func:`after_run` does all three for a retrain and never raises: a failed delivery never fails the run.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recsys_lab._fs import atomic_write_json
from recsys_lab.config import Config, alert_url
from recsys_lab.store.folder import RunFolder, read_json_optional, utc_now

__all__ = ["ALERTS_FILE", "Alert", "run_alerts", "deliver", "record", "after_run", "report_link"]

log = logging.getLogger(__name__)

ALERTS_FILE = "alerts.json"
"""The alerts of a run, in its folder (and of ``runs check``, in the runs directory): a JSON list."""

_SIGNAL_PREFIX = "SIG"  # a run stopped by a signal is recorded failed with error.ename SIGTERM, SIGINT...


@dataclass(frozen=True)
class Alert:
    """One alert.

    Attributes
    ----------
    rule : str
        One of :data:`recsys_lab.config.ALERT_RULES`.
    severity : str
        ``warning`` or ``critical``.
    run_id : str or None
        The run it is about (None: no run at all, e.g. ``runs check`` on an empty runs directory).
    reason : str
        One line.
    report : str or None
        The report's URL (``alerts.report_url`` prefix) or path.
    """

    rule: str
    severity: str
    run_id: str | None
    reason: str
    report: str | None = None

    @property
    def title(self) -> str:
        """``recsys-lab CRITICAL failed: run RUN_ID``."""
        return f"recsys-lab {self.severity.upper()} {self.rule}: run {self.run_id or '(none)'}"

    @property
    def message(self) -> str:
        """The short message: run id, reason and report."""
        report = f" Report: {self.report}" if self.report else ""
        return f"[{self.severity}] run {self.run_id or '(none)'}: {self.reason}.{report}"


def report_link(run_dir: Path, config: Config) -> str | None:
    """The report's URL (``alerts.report_url`` + ``/<run_id>/report.html``) or path on this machine.

    Parameters
    ----------
    run_dir : Path
        The run folder.
    config : Config
        ``alerts.report_url``.

    Returns
    -------
    str or None
        The URL; else the report's absolute path, or the executed notebook's when there is no report; None when
        there is neither.
    """
    folder = RunFolder(run_dir)
    if config.alerts.report_url:
        return f"{config.alerts.report_url.rstrip('/')}/{folder.run_id}/{folder.report.name}"
    for path in (folder.report, folder.notebook):
        if path.is_file():
            return str(path.resolve())
    return None


def _k(key: str, k: int) -> str:
    return key[:-2] + f"@{k}" if key.endswith("@k") else key


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def _production_values(runs_dir: Path, run_id: str, metric: str, n: int) -> list[float]:
    """``metric`` of the last ``n`` production runs (promoted, or production now) other than ``run_id``."""
    from recsys_lab.runs.registry import read_metrics, table

    t = table(runs_dir).filter((pl.col("promoted") | pl.col("production")) & (pl.col("run_id") != run_id))
    values = []
    for rid in t["run_id"].head(n):
        try:
            v = read_metrics(runs_dir / rid).get(metric)
        except Exception as exc:  # noqa: BLE001 - a damaged old run leaves the median to the others
            log.warning("median of %s: %s skipped (%s)", metric, rid, exc)
            continue
        if _number(v):
            values.append(float(v))
    return values


def _status_alert(manifest: dict, make: Any) -> Alert | None:
    """``failed`` / ``stopped`` / ``timed_out`` from the manifest's status and error."""
    status, reason = manifest.get("status"), manifest.get("reason") or "unknown"
    if status == "timed_out":
        return make("timed_out", f"timed out: {reason}")
    if status in ("failed", "crashed"):
        ename = str((manifest.get("error") or {}).get("ename") or "")
        if ename.startswith(_SIGNAL_PREFIX):
            return make("stopped", f"stopped by {ename}: {reason}")
        return make("failed", f"{status}: {reason}")
    return None


def _gate_alert(folder: RunFolder, manifest: dict, make: Any) -> Alert | None:
    """``gate``: the failed checks of ``gate.json`` (the manifest's gate when the file is missing)."""
    try:
        gate = read_json_optional(folder.gate, "gate file") or manifest.get("gate") or {}
    except Exception:  # noqa: BLE001 - damaged gate.json: the manifest still says what the gate decided
        gate = manifest.get("gate") or {}
    if not isinstance(gate, dict) or gate.get("passed", True):
        return None
    failed = [c for c in gate.get("checks") or [] if isinstance(c, dict) and not c.get("passed")]
    names = ", ".join(f"{c.get('kind')} {c.get('metric')}" for c in failed) or "unknown checks"
    detail = "; ".join(str(c.get("message")) for c in failed) or gate.get("reason") or ""
    return make("gate", f"gate refused the run, failed checks: {names} ({detail}); not promoted")


def _metric_alerts(folder: RunFolder, metrics: dict, config: Config, make: Any) -> list[Alert]:
    """``drift``, ``floor`` and ``median`` on a succeeded run's metrics."""
    a, out = config.alerts, []
    k = int(metrics.get("eval.k") or config.eval.k)
    for key, bound in a.drift.items():
        v = metrics.get(key)
        if _number(v) and v > bound:
            out.append(make("drift", f"{key} = {v:.3f} above its bound {bound:g}"))
    for key, bound in a.min.items():
        name = _k(key, k)
        v = metrics.get(name)
        if _number(v) and v < bound:
            out.append(make("floor", f"{name} = {v:.4f} below its floor {bound:g}"))
    for key in a.median:
        name = _k(key, k)
        v = metrics.get(name)
        if not _number(v):
            continue
        past = _production_values(folder.runs_dir, folder.run_id, name, a.median_runs)
        if not past:
            continue
        median = statistics.median(past)
        high = metrics.get(f"{name}.ci_high")
        high = float(high) if _number(high) else float(v)
        if high < median:
            out.append(make("median", f"{name} = {v:.4f} (95% interval up to {high:.4f}) significantly below "
                                      f"the median {median:.4f} of the last {len(past)} production run(s)"))
    return out


def run_alerts(run_dir: str | Path, config: Config) -> list[Alert]:
    """The alerts the rules in force raise for a finished run (nothing is sent).

    Parameters
    ----------
    run_dir : str or Path
        The run folder (its ``run.json``, ``gate.json`` and ``metrics.json`` are read).
    config : Config
        ``alerts`` (rules, severities, bounds) and ``eval.k`` (for ``@k`` names of runs without ``eval.k``).

    Returns
    -------
    list of Alert
        In rule order: the run's status (``failed``, ``stopped``, ``timed_out``) or, for a succeeded run, ``gate``,
        ``promoted``, ``drift``, ``floor`` and ``median``; only rules in ``alerts.rules``.

    Raises
    ------
    RunError
        The run folder has no readable ``run.json``.
    """
    folder = RunFolder(run_dir)
    manifest = folder.manifest()
    link = report_link(folder.path, config)

    def make(rule: str, reason: str) -> Alert:
        return Alert(rule, config.alerts.level(rule), folder.run_id, reason, link)

    found: list[Alert | None] = [_status_alert(manifest, make)]
    if manifest.get("status") == "succeeded":
        found.append(_gate_alert(folder, manifest, make))
        if manifest.get("promoted"):
            found.append(make("promoted", "promoted to production"))
        try:
            metrics = read_json_optional(folder.metrics, "metrics file") or {}
        except Exception as exc:  # noqa: BLE001 - no metrics, no metric rules (the run's own record says why)
            log.warning("%s", exc)
            metrics = {}
        if isinstance(metrics, dict):
            found.extend(_metric_alerts(folder, metrics, config, make))
    return [a for a in found if a is not None and a.rule in config.alerts.rules]


def _redact(url: str) -> str:
    """A URL's scheme and host only, for a URL apprise could not parse (it may hold a token)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/')[0].rsplit('@', 1)[-1]}/..."


def _send_apprise(entry: str, alert: Alert) -> dict[str, Any]:
    """Send one alert to one ``alerts.urls`` entry: ``{"to", "delivered", "error"}`` (secrets in the URL masked)."""
    import apprise

    try:
        url = alert_url(entry)
        if url is None:
            return {"to": entry, "delivered": False, "error": f"environment variable {entry.strip('${}')} is not set"}
        ap = apprise.Apprise()
        if not ap.add(url):
            return {"to": _redact(url), "delivered": False, "error": "apprise cannot use this URL"}
        to = ap[0].url(privacy=True).split("?")[0]
        to = to if url == entry else f"{entry} ({to})"
        kind = apprise.NotifyType.FAILURE if alert.severity == "critical" else apprise.NotifyType.WARNING
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
            ok = bool(ap.notify(body=alert.message, title=alert.title, notify_type=kind))
        lines = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
        return {"to": to, "delivered": ok, "error": None if ok else (lines[-1] if lines else "not delivered")}
    except Exception as exc:  # noqa: BLE001 - a channel's failure is recorded, never raised
        return {"to": _redact(entry), "delivered": False, "error": f"{type(exc).__name__}: {exc}"}


def _run_command(command: str, alert: Alert, timeout: float) -> dict[str, Any]:
    """Run ``alerts.command`` with the alert as JSON on stdin and in ``RECSYS_ALERT_*`` variables."""
    env = {**os.environ, "RECSYS_ALERT_RULE": alert.rule, "RECSYS_ALERT_SEVERITY": alert.severity,
           "RECSYS_ALERT_RUN_ID": alert.run_id or "", "RECSYS_ALERT_REASON": alert.reason,
           "RECSYS_ALERT_REPORT": alert.report or "", "RECSYS_ALERT_MESSAGE": alert.message}
    payload = json.dumps({**asdict(alert), "title": alert.title, "message": alert.message})
    try:
        proc = subprocess.run(command, shell=True, input=payload, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"to": "command", "delivered": False, "error": f"the command took more than {timeout:g} s"}
    except OSError as exc:
        return {"to": "command", "delivered": False, "error": f"{type(exc).__name__}: {exc}"}
    if proc.returncode == 0:
        return {"to": "command", "delivered": True, "error": None}
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()
    return {"to": "command", "delivered": False,
            "error": f"exit {proc.returncode}" + (f": {tail[-1]}" if tail else "")}


def deliver(alerts: list[Alert], config: Config) -> list[dict[str, Any]]:
    """Send every alert to every channel; nothing raises.

    Parameters
    ----------
    alerts : list of Alert
        What to send.
    config : Config
        ``alerts.urls``, ``alerts.command`` and ``alerts.timeout``.

    Returns
    -------
    list of dict
        One record per alert: ``rule, severity, run_id, reason, report, title, message, sent_at`` and
        ``deliveries`` (``to`` -- the URL with its secrets masked, or ``command`` --, ``delivered``, ``error``).
        A failed delivery is logged as a warning.
    """
    out = []
    for alert in alerts:
        deliveries = [_send_apprise(url, alert) for url in config.alerts.urls]
        if config.alerts.command:
            deliveries.append(_run_command(config.alerts.command, alert, config.alerts.timeout))
        for d in deliveries:
            if not d["delivered"]:
                log.warning("alert %s of run %s not delivered to %s: %s", alert.rule, alert.run_id, d["to"],
                            d["error"])
        out.append({**asdict(alert), "title": alert.title, "message": alert.message, "sent_at": utc_now(),
                    "deliveries": deliveries})
    return out


def record(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Append alert records to an ``alerts.json`` (a JSON list; written atomically).

    Parameters
    ----------
    path : str or Path
        The file (created when missing; a damaged one is replaced).
    records : list of dict
        From :func:`deliver`.

    Returns
    -------
    Path
        The file.

    Raises
    ------
    OSError
        The file cannot be written.
    """
    path = Path(path)
    try:
        before = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    except (OSError, ValueError):
        before = []
    return atomic_write_json(path, (before if isinstance(before, list) else []) + records)


def after_run(run_dir: str | Path, config: Config) -> list[dict[str, Any]]:
    """Alert on a finished retrain: :func:`run_alerts`, :func:`deliver`, :func:`record` in ``alerts.json``.

    Parameters
    ----------
    run_dir : str or Path
        The run folder.
    config : Config
        The run's configuration (``alerts``).

    Returns
    -------
    list of dict
        The records written ([] when no rule fired, or when the alerts could not be worked out: logged, never
        raised, so that alerting never changes a run's outcome or exit code).
    """
    try:
        alerts = run_alerts(run_dir, config)
        if not alerts:
            return []
        records = deliver(alerts, config)
        record(Path(run_dir) / ALERTS_FILE, records)
        return records
    except Exception as exc:  # noqa: BLE001 - alerting must never fail the run
        log.warning("alerts of %s: %s", Path(run_dir).name, exc)
        return []
