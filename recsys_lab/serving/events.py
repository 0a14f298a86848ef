"""Events taken in near-real time: an append-only journal on disk, folded into update versions in micro-batches.

``POST /events`` (:mod:`recsys_lab.serving.app`) checks each interaction (:func:`check_events`), appends it to the
journal ``<runs_dir>/.events/journal.jsonl`` and fsyncs the file **before** acknowledging, so nothing acknowledged is
lost on a crash. A background thread (:class:`Folder`) folds the journal every ``serve.update_seconds`` into an
update version of the served run through :func:`recsys_lab.serving.updates.update`, exactly as ``recsys-lab update``
writes one: the journal's new lines are written as an update file in the run's columns
(``<runs_dir>/.events/batches/<run_id>-<start>-<end>.parquet``, byte offsets into the journal) and updated from.

What a run has folded is read back from its versions' manifests (their ``source`` names the batch and its end
offset): a version is the commit record, so a process killed at any point refolds exactly the lines no version
holds, and a newly promoted run folds the whole journal into its first version. The journal is never rewritten
except that a torn last line (a write killed before its fsync, never acknowledged) is cut at start.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from recsys_lab.data.sources import update_source
from recsys_lab.errors import RecsysLabError, RunError
from recsys_lab.runs.registry import resolve
from recsys_lab.serving.saved_run import ServedRun
from recsys_lab.serving.updates import update
from recsys_lab.store.folder import RunFolder, read_json

__all__ = ["EventError", "Journal", "Folder", "check_events", "event_columns", "EVENTS_DIR"]

log = logging.getLogger(__name__)

EVENTS_DIR = ".events"
"""The journal's folder under the runs directory (a name that can never be a run reference)."""

_BATCH = re.compile(r"-(\d+)-(\d+)\.parquet$")


class EventError(RecsysLabError):
    """A posted event is malformed: ``field`` names it (``events[3].rating``), the message says why.

    Parameters
    ----------
    field : str
        The offending field, as a path into the request body.
    message : str
        What is wrong with it.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.reason = field, message


def event_columns(m: ServedRun) -> dict[str, Any]:
    """The columns of an update file for run ``m`` (what an event's fields are named).

    Parameters
    ----------
    m : ServedRun

    Returns
    -------
    dict
        ``user``, ``item``, ``weight`` (None: the run reads no weight), ``time`` (None: no timestamps) column
        names, ``unit`` (``s`` or ``ms``: epoch numbers) and ``range`` (the allowed raw weights, ``()``: >= 0).
    """
    cfg, rng = update_source(m.data_config, "events")
    return {"user": cfg.user_col, "item": cfg.item_col, "weight": cfg.weight_col, "time": cfg.time_col or None,
            "unit": cfg.time_unit, "range": tuple(rng)}


def _time(value: Any, unit: str, where: str) -> str:
    """An event time (epoch number in ``unit`` or ISO 8601 text) as ISO 8601 UTC text."""
    if isinstance(value, bool):
        raise EventError(where, f"expected epoch {'seconds' if unit == 's' else 'milliseconds'} or ISO 8601 text, "
                         f"got {value!r}")
    try:
        if isinstance(value, (int, float)):
            if not math.isfinite(value) or abs(value) > (1e11 if unit == "s" else 1e14):
                raise ValueError(value)
            ts = datetime.fromtimestamp(value / (1 if unit == "s" else 1000), timezone.utc)
        elif isinstance(value, str):
            ts = datetime.fromisoformat(value.strip())
            ts = ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)
        else:
            raise ValueError(value)
    except (ValueError, OverflowError, OSError):
        raise EventError(where, f"expected epoch {'seconds' if unit == 's' else 'milliseconds'} or ISO 8601 text, "
                         f"got {value!r}") from None
    return ts.isoformat()


def check_events(m: ServedRun, events: Any) -> list[dict[str, Any]]:
    """Posted interactions checked against run ``m`` and put in the journal's form.

    Parameters
    ----------
    m : ServedRun
        The served run (its id types, items, column names and weight range).
    events : list of dict
        Interactions named by the run's update-file columns (:func:`event_columns`; MovieLens runs:
        ``user_id, item_id, rating, timestamp``). A missing time is now.

    Returns
    -------
    list of dict
        ``user, item, weight, ts`` (ISO 8601 UTC), ids in the run's types.

    Raises
    ------
    EventError
        Not a non-empty list of objects, a missing field, an id of the wrong type, an item the run does not know,
        a weight outside the run's range, an unparsable time (the field is named, e.g. ``events[2].item_id``).
    """
    if not isinstance(events, list) or not events:
        raise EventError("events", "expected a non-empty list of interactions")
    cols = event_columns(m)
    lo, hi = (cols["range"][0], cols["range"][-1]) if cols["range"] else (0.0, math.inf)
    now = datetime.now(timezone.utc).isoformat()
    out = []
    for j, e in enumerate(events):
        where = f"events[{j}]"
        if not isinstance(e, dict):
            raise EventError(where, f"expected an object with {cols['user']}, {cols['item']}"
                             + (f", {cols['weight']}" if cols["weight"] else ""))
        for key in ("user", "item") + (("weight",) if cols["weight"] else ()):
            if e.get(cols[key]) is None:
                raise EventError(f"{where}.{cols[key]}", "missing")
        try:
            user = m.user_key(e[cols["user"]])
        except RunError as exc:
            raise EventError(f"{where}.{cols['user']}", str(exc)) from None
        item = e[cols["item"]]
        idx, ok = m.items.lookup(np.array([str(item).strip()]))
        if isinstance(item, (bool, dict, list)) or not ok[0]:
            raise EventError(f"{where}.{cols['item']}", f"unknown item {item!r} in run {m.run_id}")
        weight = 1.0
        if cols["weight"]:
            w = e[cols["weight"]]
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not lo <= w <= hi:
                raise EventError(f"{where}.{cols['weight']}", f"expected a number in [{lo}, {hi}], got {w!r}")
            weight = float(w)
        t = e.get(cols["time"]) if cols["time"] else None
        ts = now if t is None else _time(t, cols["unit"], f"{where}.{cols['time']}")
        out.append({"user": user, "item": m.item_ids[idx[0]].item(), "weight": weight, "ts": ts})
    return out


class Journal:
    """The append-only event journal (JSON lines), fsynced on every append.

    Parameters
    ----------
    path : str or Path
        The journal file (created with its folder); a torn last line is cut.

    Raises
    ------
    OSError
        The folder or file cannot be created.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with open(self.path, "a+b") as f:
            f.seek(0)
            data = f.read()
            end = data.rfind(b"\n") + 1
            if end < len(data):  # a write killed before its fsync: never acknowledged
                log.warning("%s: cut a torn last line (%d bytes, never acknowledged)", self.path, len(data) - end)
                f.truncate(end)
                os.fsync(f.fileno())
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def append(self, records: list[dict[str, Any]]) -> int:
        """Append records (one JSON line each, stamped ``received``) and fsync before returning.

        Parameters
        ----------
        records : list of dict
            JSON-serialisable records.

        Returns
        -------
        int
            The journal's size after the append (bytes).

        Raises
        ------
        OSError
            The write or fsync failed (nothing may be acknowledged).
        """
        now = time.time()
        data = "".join(json.dumps({**r, "received": now}, separators=(",", ":")) + "\n" for r in records).encode()
        with self._lock:
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
            return os.fstat(self._fd).st_size

    def read(self, start: int) -> tuple[list[dict[str, Any]], int]:
        """The complete lines from byte ``start``.

        Parameters
        ----------
        start : int
            A byte offset at a line start (0 or an end returned before).

        Returns
        -------
        records : list of dict
        end : int
            The offset after the last complete line read.
        """
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read()
        end = data.rfind(b"\n") + 1
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()], start + end

    def size(self) -> int:
        """The journal's size in bytes.

        Returns
        -------
        int
        """
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        """Close the journal's file descriptor."""
        os.close(self._fd)


class Folder:
    """The micro-batch: folds the journal into update versions of the served run, in a background thread.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (the journal is ``<runs_dir>/.events/journal.jsonl``).
    current : callable
        Returns the served run (the one to fold into) when called.
    every : float
        Seconds between folds (``serve.update_seconds``).

    Attributes
    ----------
    journal : Journal
    folded : int
        Events folded by this process.
    last_error : str or None
        Why the last fold failed (retried at the next tick), None after a success.
    """

    def __init__(self, runs_dir: str | Path, current: Callable[[], ServedRun], every: float) -> None:
        self.runs_dir, self.current, self.every = Path(runs_dir), current, float(every)
        self.journal = Journal(self.runs_dir / EVENTS_DIR / "journal.jsonl")
        self.batches = self.runs_dir / EVENTS_DIR / "batches"
        self.folded = 0
        self.last_error: str | None = None
        self.lags: deque[float] = deque(maxlen=10_000)
        self._offsets: dict[str, int] = {}
        self._stop = threading.Event()
        self._fold_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def offset(self, run_id: str) -> int:
        """How far into the journal run ``run_id`` has folded (bytes), from its update versions' manifests.

        Parameters
        ----------
        run_id : str

        Returns
        -------
        int
            0 when no version of the run came from the journal.
        """
        if run_id not in self._offsets:
            end = 0
            updates = RunFolder(resolve(self.runs_dir, run_id)).updates
            for man in sorted(updates.glob("*/manifest.json")) if updates.is_dir() else []:
                source = str(read_json(man).get("source", ""))
                hit = _BATCH.search(source)
                if hit and Path(source).parent == self.batches.resolve():
                    end = max(end, int(hit.group(2)))
            self._offsets[run_id] = end
        return self._offsets[run_id]

    def fold(self) -> dict[str, Any] | None:
        """Fold the journal's new lines into an update version of the served run now.

        Returns
        -------
        dict or None
            The version's manifest (:func:`recsys_lab.serving.updates.update`); None when nothing was new.

        Raises
        ------
        RecsysLabError, OSError
            The update failed (nothing is marked folded: the lines are folded at the next try).
        """
        with self._fold_lock:
            m = self.current()
            start = self.offset(m.run_id)
            records, end = self.journal.read(start)
            if not records:
                return None
            cols = event_columns(m)
            kinds = {"user": m.user_ids.dtype.kind, "item": m.item_ids.dtype.kind}
            frame = {cols[key]: pl.Series([r[key] for r in records], dtype=pl.Int64 if kinds[key] in "iu" else pl.Utf8)
                     for key in ("user", "item")}
            if cols["weight"]:
                frame[cols["weight"]] = pl.Series([r["weight"] for r in records], dtype=pl.Float64)
            if cols["time"]:
                frame[cols["time"]] = pl.Series([r["ts"] for r in records], dtype=pl.Utf8)
            self.batches.mkdir(parents=True, exist_ok=True)
            batch = self.batches.resolve() / f"{m.run_id}-{start}-{end}.parquet"
            pl.DataFrame(frame).write_parquet(batch)
            try:
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    manifest = update(self.runs_dir, batch, run=m.run_id)
            finally:
                batch.unlink(missing_ok=True)
            self._offsets[m.run_id] = end
            now = time.time()
            self.lags.extend(now - float(r.get("received", now)) for r in records)
            self.folded += len(records)
            return manifest

    def lag(self) -> dict[str, float | None]:
        """Seconds from an event's acknowledgement to the version that serves it: p50 and p99 of the last 10,000.

        Returns
        -------
        dict
            ``p50``, ``p99`` (None before the first fold) and ``events`` (how many were measured).
        """
        if not self.lags:
            return {"p50": None, "p99": None, "events": 0}
        arr = np.fromiter(self.lags, float)
        return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99)), "events": len(arr)}

    def pending(self) -> int:
        """Journal bytes the served run has not folded yet.

        Returns
        -------
        int
        """
        return self.journal.size() - self.offset(self.current().run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.fold()
                self.last_error = None
            except (RecsysLabError, OSError, pl.exceptions.PolarsError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("folding events failed (retried in %.0f s): %s", self.every, exc)

    def start(self) -> None:
        """Start the background thread (a fold every ``every`` seconds; the first one right away)."""
        def run() -> None:
            try:
                self.fold()
            except (RecsysLabError, OSError, pl.exceptions.PolarsError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("folding events failed: %s", exc)
            self._loop()
        self._thread = threading.Thread(target=run, name="recsys-lab-events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and close the journal."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.journal.close()
