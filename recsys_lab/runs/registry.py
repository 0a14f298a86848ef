"""The registry: queries over the run folders (there is no server: the folders are the registry).

:func:`table` is a DuckDB query over ``runs/*/run.json`` and ``metrics.json`` returning Polars;
:func:`resolve` turns a reference (``production``, ``latest``, ``latest-any``, a run id or a unique prefix) into a folder directly
under the runs directory (a reference is never a path: ``..``, absolute paths, separators are refused and glob
characters are literal); :func:`show` reads one run for ``runs show``; :func:`promote` moves ``runs/PRODUCTION``
(:func:`recsys_lab.runs.production.point`: intent, pointer, record); :func:`recover` puts right what a killed
process left (promotion intents, stale temp files); :func:`compare` pairs two runs. Removing old runs is
:mod:`recsys_lab.runs.retention`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_lab._fs import remove_stale_temps
from recsys_lab.errors import DataError, RunError
from recsys_lab.runs.lock import RetrainLock
from recsys_lab.runs.outcome import refusal
from recsys_lab.evaluation import keys
from recsys_lab.runs.record import rewrite_verdict
from recsys_lab.runs.production import check_reference, point, production_id, reconcile, run_folders
from recsys_lab.store.folder import RunFolder, effective_status, pid_alive, read_json_optional, read_manifest
from recsys_lab.data.warehouse import query_files

__all__ = ["KEY_METRICS", "table", "resolve", "check_reference", "run_folders", "manifest_of", "production_id",
           "read_metrics", "show", "promote", "recover", "compare", "paired_comparison"]

log = logging.getLogger(__name__)

KEY_METRICS = ("ndcg@k", "recall@k", "auc", "coverage@k", "ann.recall@k")
"""Metrics that :func:`table` shows as columns; ``@k`` reads each run's own ``eval.k`` (column ``k``)."""


def table(runs_dir: str | Path = "runs") -> pl.DataFrame:
    """All runs, newest first, as a Polars frame (a DuckDB query over ``runs/*/run.json`` and metrics).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (default ``runs``); a missing or empty one gives an empty frame.

    Returns
    -------
    pl.DataFrame
        ``run_id, status, started_at, ended_at, duration_s, snapshot, production (bool), gate_passed,
        promoted, reason, k`` (the run's ``eval.k``; 10 for runs that did not record it) and one Float64 column
        per key metric (``ndcg@k``, ``recall@k``, ``auc``, ``coverage@k``, ``ann.recall@k``, each at the run's own
        ``k``; null when absent). ``status`` is ``crashed`` for a ``running`` run whose process is gone.

    Raises
    ------
    RunError
        A ``run.json`` cannot be read (e.g. hand-edited into invalid JSON); the message says why.
    """
    runs_dir = Path(runs_dir)
    schema = {"run_id": pl.Utf8, "status": pl.Utf8, "started_at": pl.Utf8, "ended_at": pl.Utf8,
              "duration_s": pl.Float64, "snapshot": pl.Utf8, "production": pl.Boolean, "gate_passed": pl.Boolean,
              "promoted": pl.Boolean, "reason": pl.Utf8, "k": pl.Int64, **{m: pl.Float64 for m in KEY_METRICS}}
    run_json, metrics_json = RunFolder(runs_dir / "*").run_json, RunFolder(runs_dir / "*").metrics
    if not any(runs_dir.glob(f"*/{run_json.name}")):
        return pl.DataFrame(schema=schema)
    glob = str(run_json).replace("'", "''")
    mglob = str(metrics_json).replace("'", "''")
    has_metrics = any(runs_dir.glob(f"*/{metrics_json.name}"))
    metrics_src = (f"(SELECT regexp_extract(filename, '([^/]+)/{metrics_json.name}$', 1) AS run_id, content "
                   f"FROM read_text('{mglob}'))" if has_metrics else "(SELECT NULL::VARCHAR AS run_id, NULL::VARCHAR AS content)")
    query = f"""
        WITH r AS (
            SELECT * FROM read_json('{glob}', format='auto', union_by_name=true, columns={{
                run_id: 'VARCHAR', status: 'VARCHAR', started_at: 'VARCHAR', ended_at: 'VARCHAR', pid: 'BIGINT',
                host: 'VARCHAR', data: 'JSON', timings: 'JSON', gate: 'JSON', promoted: 'BOOLEAN', reason: 'VARCHAR'}})
        )
        SELECT r.run_id, r.status, r.started_at, r.ended_at,
               TRY_CAST(json_extract(r.timings, '$.total') AS DOUBLE) AS duration_s,
               json_extract_string(r.data, '$.snapshot') AS snapshot,
               TRY_CAST(json_extract(r.gate, '$.passed') AS BOOLEAN) AS gate_passed,
               coalesce(r.promoted, false) AS promoted, r.reason, r.pid, r.host, m.content AS metrics
        FROM r LEFT JOIN {metrics_src} m ON m.run_id = r.run_id
        ORDER BY r.started_at DESC, r.run_id DESC
    """
    try:
        df = query_files(query)
    except DataError as exc:  # a hand-edited or foreign run.json: name it instead of a raw traceback
        raise RunError(f"{runs_dir}: cannot read the run manifests ({exc})") from exc
    prod = _production_or_none(runs_dir)
    status = [effective_status(s, p, h) for s, p, h in zip(df["status"], df["pid"], df["host"])]
    df = df.with_columns(pl.Series("status", status, pl.Utf8), (pl.col("run_id") == pl.lit(prod) if prod else pl.lit(False)).alias("production"))
    rows = [_key_metrics(content) for content in df["metrics"]]
    df = df.with_columns(pl.Series("k", [r[0] for r in rows], pl.Int64),
                         *(pl.Series(name, [r[1][j] for r in rows], pl.Float64) for j, name in enumerate(KEY_METRICS)))
    return df.select(list(schema)).cast(schema)


def _production_or_none(runs_dir: Path) -> str | None:
    """The production run id for marking it in a listing; an unreadable pointer is logged, not raised (the listing
    is how one finds the run to promote instead)."""
    try:
        return production_id(runs_dir)
    except RunError as exc:
        log.warning("%s", exc)
        return None


def recover(runs_dir: str | Path) -> None:
    """What a killed process left in the runs directory, put right (at each start: retrain, ``runs`` commands).

    Promotion intents are settled (:func:`recsys_lab.runs.production.reconcile`) and the temp files of killed
    atomic writes older than a minute are removed (:func:`recsys_lab._fs.remove_stale_temps`), except in the
    folder of the run the live holder of the retrain lock is writing.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (a missing one is left alone).

    Raises
    ------
    OSError
        A manifest could not be rewritten.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return
    reconcile(runs_dir)
    holder = RetrainLock(runs_dir).holder()
    live = holder.get("run_id") if isinstance(holder.get("run_id"), str) and pid_alive(holder.get("pid")) else None
    for path in remove_stale_temps(runs_dir, skip=[runs_dir / live] if live else []):
        log.warning("removed %s, left by a killed write", path)


def _key_metrics(content: str | None) -> tuple[int, list[float | None]]:
    """A run's ``eval.k`` and its :data:`KEY_METRICS` at that ``k`` from the text of ``metrics.json``."""
    try:
        m = json.loads(content) if content else {}
    except ValueError:
        m = {}
    k = keys.k_of(m)

    def number(key: str) -> float | None:
        v = m.get(keys.resolve(key, k))
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return k, [number(name) for name in KEY_METRICS]


def resolve(runs_dir: str | Path, ref: str) -> Path:
    """A run folder from a reference: ``production``, ``latest``, ``latest-any``, a run id or a unique prefix.

    ``latest`` is the newest run that succeeded and passed its gate (what a scheduler may serve); ``latest-any``
    the newest run of any status.

    Parameters
    ----------
    runs_dir : str or Path
    ref : str
        Matched literally against the folder names directly under ``runs_dir`` (``*``, ``?`` and ``[`` are not
        patterns).

    Returns
    -------
    Path
        The run folder (``runs_dir/<run_id>``).

    Raises
    ------
    RunError
        No such run, an ambiguous prefix, no production run, or a reference that is a path
        (:func:`check_reference`).
    """
    runs_dir = Path(runs_dir)
    if ref == "production":
        pid = production_id(runs_dir)
        if not pid:
            raise RunError(f"{runs_dir}: no production run yet (promote one with `recsys-lab runs promote ID`)")
        ref = pid
    elif ref == "latest":
        t = table(runs_dir).filter((pl.col("status") == "succeeded") & pl.col("gate_passed").fill_null(True))
        if t.height == 0:
            raise RunError(f"{runs_dir}: no run succeeded and passed its gate (`latest-any`: the newest of any "
                           "status)")
        ref = t["run_id"][0]
    elif ref == "latest-any":
        t = table(runs_dir)
        if t.height == 0:
            raise RunError(f"{runs_dir}: no run yet")
        ref = t["run_id"][0]
    check_reference(runs_dir, ref)
    hits = [p for p in run_folders(runs_dir) if p.name.startswith(ref)]
    exact = [p for p in hits if p.name == ref]
    if exact:
        return exact[0]
    if len(hits) != 1:
        raise RunError(f"{runs_dir}: {'no' if not hits else str(len(hits))} runs match {ref!r}")
    return hits[0]


def manifest_of(run_dir: Path) -> dict[str, Any]:
    """``run.json`` of a run folder, checked to be a JSON object.

    Parameters
    ----------
    run_dir : Path
        The run folder.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    RunError
        No manifest, not valid JSON, or not a JSON object; the message names the file.
    """
    manifest = read_manifest(run_dir)
    if not isinstance(manifest, dict):
        raise RunError(f"{RunFolder(run_dir).run_json}: the run manifest is not a JSON object "
                       f"(got {type(manifest).__name__})")
    return manifest


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``metrics.json`` ({} when the run wrote none).

    Parameters
    ----------
    run_dir : str or Path
        The run folder.

    Returns
    -------
    dict
        The flat metrics.

    Raises
    ------
    RunError
        The file is unreadable, not valid JSON or not a JSON object; the message names it.
    """
    path = RunFolder(run_dir).metrics
    metrics = read_json_optional(path, "metrics file")
    if not isinstance(metrics, dict):
        raise RunError(f"{path}: the metrics file is not a JSON object (got {type(metrics).__name__})")
    return metrics


def show(runs_dir: str | Path, ref: str) -> dict[str, Any]:
    """What ``recsys-lab runs show`` prints about one run, read and checked.

    Parameters
    ----------
    runs_dir : str or Path
    ref : str
        Run reference (see :func:`resolve`).

    Returns
    -------
    dict
        ``run_dir`` (Path), ``manifest`` (dict), ``metrics`` (dict, or None when the run wrote no
        ``metrics.json``), ``production`` (bool).

    Raises
    ------
    RunError
        Unknown run, or a manifest or metrics file that is damaged (not JSON, not an object).
    """
    run_dir = resolve(runs_dir, ref)
    manifest = manifest_of(run_dir)
    metrics = read_metrics(run_dir) if RunFolder(run_dir).metrics.is_file() else None
    return {"run_dir": run_dir, "manifest": manifest, "metrics": metrics,
            "production": _production_or_none(Path(runs_dir)) == run_dir.name}


def promote(runs_dir: str | Path, ref: str, *, force: bool = False) -> str:
    """Make a run production: ``runs/PRODUCTION`` holds its full id, recorded in its ``run.json``.

    The move is :func:`recsys_lab.runs.production.point` (the intent in ``run.json``, the pointer replaced
    atomically, then ``promoted: true`` and ``promotion.done``), so a kill never leaves them disagreeing. A
    ``runs/PRODUCTION`` that holds a prefix (older versions) or garbage is replaced.

    Parameters
    ----------
    runs_dir : str or Path
    ref : str
        Run reference (see :func:`resolve`).
    force : bool
        Promote even a run that did not succeed or failed its gate.

    Returns
    -------
    str
        The promoted run id.

    Raises
    ------
    RunError
        Unknown run, or a run that did not succeed / failed its gate without ``force``.
    OSError
        ``run.json`` or ``runs/PRODUCTION`` could not be written (settled at the next start).
    """
    run_dir = resolve(runs_dir, ref)
    manifest = manifest_of(run_dir)
    status = effective_status(manifest.get("status"), manifest.get("pid"), manifest.get("host"))
    why = refusal(run_dir.name, status, manifest.get("gate"))
    if why and not force:
        raise RunError(why)
    promoted = point(runs_dir, run_dir.name)
    # the record says who promoted it (and what --force overrode); the report's verdict card says so too
    folder = RunFolder(run_dir)
    folder.update(promotion={**(promoted.get("promotion") or {}), "by": "hand",
                             "forced": why.split(": refusing")[0] if why else None})
    rewrite_verdict(folder)
    return run_dir.name


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_SPLIT_KEYS = ("split.", "data.positive_threshold", "data.weight_transform", "data.time_col", "data.user_col",
               "data.item_col", "data.source", "eval.max_users", "eval.k")


def _same_split(ra: dict, rb: dict) -> tuple[bool, str]:
    """Whether two runs evaluated the same users on the same split (then their per-user metrics pair up)."""
    sa, sb = (ra.get("data") or {}).get("hash"), (rb.get("data") or {}).get("hash")
    if sa is None or sa != sb:
        return False, "different data snapshots"
    fa, fb = _flatten(ra.get("config", {})), _flatten(rb.get("config", {}))
    diff = [k for k in sorted(set(fa) | set(fb)) if k.startswith(_SPLIT_KEYS) and fa.get(k) != fb.get(k)]
    if diff:
        return False, "different split or evaluation settings (" + ", ".join(diff) + ")"
    return True, "same snapshot and split"


def paired_comparison(run_a: str | Path, run_b: str | Path, *, model: str = "model", n_resamples: int = 1000,
                      seed: int = 0) -> pl.DataFrame:
    """Per-user paired differences ``b - a`` of every metric of two runs on the same users.

    Parameters
    ----------
    run_a, run_b : str or Path
        Run folders evaluated on the same snapshot and split (see :func:`compare`).
    model : str
        Which model's per-user metrics to pair (``model`` or a baseline name).
    n_resamples, seed
        Bootstrap settings (:func:`recsys_lab.evaluation.intervals.paired_difference`).

    Returns
    -------
    pl.DataFrame
        ``metric, a, b, delta, ci_low, ci_high, significant, n_users``.

    Raises
    ------
    RunError
        A run has no readable ``artifacts/per_user_metrics.parquet``.
    """
    from recsys_lab.evaluation.intervals import paired_difference

    frames = []
    for run in (run_a, run_b):
        path = RunFolder(run).per_user_metrics
        try:
            frames.append(pl.read_parquet(path).filter(pl.col("model") == model).drop("model"))
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise RunError(f"{path}: cannot read the per-user metrics ({str(exc).splitlines()[0]})") from exc
    joined = frames[0].join(frames[1], on="user_id", suffix="_b")
    rows = []
    for metric in [c for c in frames[0].columns if c != "user_id" and c + "_b" in joined.columns]:
        a, b = joined[metric].to_numpy().astype(float), joined[metric + "_b"].to_numpy().astype(float)
        d = paired_difference(b, a, n_resamples=n_resamples, seed=seed)
        rows.append({"metric": metric, "a": float(np.nanmean(a)), "b": float(np.nanmean(b)), "delta": d["delta"],
                     "ci_low": d["ci_low"], "ci_high": d["ci_high"], "significant": d["significant"],
                     "n_users": d["n_users"]})
    return pl.DataFrame(rows, schema={"metric": pl.Utf8, "a": pl.Float64, "b": pl.Float64, "delta": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64, "significant": pl.Boolean,
                                      "n_users": pl.Int64})


def compare(runs_dir: str | Path, a: str, b: str) -> dict[str, Any]:
    """Metrics, parameter differences and data difference between runs ``a`` and ``b``.

    When both runs evaluated the same users (same data snapshot, split and evaluation settings) the model's
    per-user metrics are paired: each difference comes with its 95 % bootstrap interval and whether it is
    significant. Otherwise the comparison is not paired and says why.

    Parameters
    ----------
    runs_dir : str or Path
    a, b : str
        Run references (see :func:`resolve`).

    Returns
    -------
    dict
        ``a``, ``b`` (run ids); ``metrics``: pl.DataFrame ``metric, a, b, delta (b - a), relative (delta / |a|)``
        of the headline metrics (intervals left out); ``paired``: bool; ``pairing``: why (not) paired;
        ``paired_metrics``: :func:`paired_comparison` output or None; ``params``: pl.DataFrame ``parameter, a,
        b`` of differing config values (paths excluded); ``same_data``: bool; ``snapshots``: (a, b).

    Raises
    ------
    RunError
        Unknown run, or a manifest or metrics file that is not valid JSON.
    """
    da, db = resolve(runs_dir, a), resolve(runs_dir, b)
    ma, mb = read_metrics(da), read_metrics(db)
    keys = [k for k in list(ma) + [k for k in mb if k not in ma] if not k.endswith((".ci_low", ".ci_high"))]
    num = [k for k in keys if isinstance(ma.get(k), (int, float)) or isinstance(mb.get(k), (int, float))]
    va = [ma.get(k) for k in num]
    vb = [mb.get(k) for k in num]
    metrics = pl.DataFrame({"metric": num, "a": va, "b": vb}, schema={"metric": pl.Utf8, "a": pl.Float64,
                                                                        "b": pl.Float64})
    metrics = metrics.with_columns((pl.col("b") - pl.col("a")).alias("delta"))
    metrics = metrics.with_columns(pl.when(pl.col("a").abs() > 0).then(pl.col("delta") / pl.col("a").abs())
                                   .otherwise(None).alias("relative"))
    ra, rb = manifest_of(da), manifest_of(db)
    fa, fb = _flatten(ra.get("config", {})), _flatten(rb.get("config", {}))
    diff = [k for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k) and k not in ("data.warehouse",)]
    params = pl.DataFrame({"parameter": diff, "a": [json.dumps(fa.get(k)) for k in diff],
                           "b": [json.dumps(fb.get(k)) for k in diff]}, schema={"parameter": pl.Utf8, "a": pl.Utf8,
                                                                                  "b": pl.Utf8})
    paired, why = _same_split(ra, rb)
    paired_metrics = None
    if paired:
        try:
            paired_metrics = paired_comparison(da, db)
        except RunError as exc:
            paired, why = False, str(exc)
    sa, sb = (ra.get("data") or {}).get("hash"), (rb.get("data") or {}).get("hash")
    return {"a": da.name, "b": db.name, "metrics": metrics, "params": params, "same_data": sa == sb and sa is not None,
            "snapshots": ((ra.get("data") or {}).get("snapshot"), (rb.get("data") or {}).get("snapshot")),
            "paired": paired, "pairing": why, "paired_metrics": paired_metrics}



def history(runs_dir: str | Path = "runs") -> pl.DataFrame:
    """Every run as one row, in the order of its data cut-off (:func:`recsys_lab.runs.history.history`).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory; a missing or empty one gives an empty frame.

    Returns
    -------
    pl.DataFrame
        See :func:`recsys_lab.runs.history.history`.
    """
    from recsys_lab.runs.history import history as frame

    return frame(runs_dir)
