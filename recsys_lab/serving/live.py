"""The run a long-lived service answers from, following promotion: ``runs/PRODUCTION`` is polled, a newly promoted
run is loaded in the background and swapped in atomically.

The swap is one reference assignment (:attr:`Live.current`): a request reads it once and keeps that run to the end,
so in-flight requests finish on the old run. A new production run is loaded through :mod:`recsys_lab.store.artifacts`
(every artifact read: :meth:`~recsys_lab.store.artifacts.SavedRun.verify`), its snapshot kept in memory
(:meth:`~recsys_lab.serving.saved_run.ServedRun.preload`) and one recommendation computed before it is served; a run
that fails any of it is refused: the old one keeps serving and :meth:`Live.health` says why. References are resolved
by :func:`recsys_lab.runs.registry.resolve`, strictly under the runs directory.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys_lab.errors import RecsysLabError
from recsys_lab.runs.production import production_id
from recsys_lab.runs.registry import resolve
from recsys_lab.serving import saved_run
from recsys_lab.serving.recommend import recommend
from recsys_lab.serving.saved_run import ServedRun, served_run
from recsys_lab.serving.updates import load_version
from recsys_lab.store.folder import production_file

__all__ = ["Live", "load_for_serving"]

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def load_for_serving(runs_dir: str | Path, ref: str) -> ServedRun:
    """A run loaded, checked and kept in memory for serving.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    ref : str
        Run reference (``production``, ``latest``, an id or a unique prefix; never a path).

    Returns
    -------
    ServedRun
        Every artifact read, the snapshot's interactions and titles preloaded, one recommendation served.

    Raises
    ------
    RecsysLabError
        Unknown run, a missing or damaged artifact, a snapshot gone from the warehouse (the message names it).
    OSError
        A file could not be read.
    """
    run_id = resolve(runs_dir, ref).name
    m = served_run(runs_dir, run_id)
    m.saved.verify()
    m.preload()
    if len(m.user_ids):
        recommend(runs_dir, m.user_ids[0].item(), run=run_id, k=1)
    return m


class Live:
    """The served run, swapped when ``runs/PRODUCTION`` moves (``ref="production"``); fixed otherwise.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    ref : str
        The run to serve (default ``production``: followed).
    poll_seconds : float
        How often the pointer is checked.

    Attributes
    ----------
    current : ServedRun
        The run answering now (read it once per request).
    loaded_at : str
        When it was swapped in (UTC, ISO 8601).
    refused : dict or None
        The last production run that could not be loaded: ``run_id``, ``reason``, ``at``; None once one loads.

    Raises
    ------
    RecsysLabError
        The initial run cannot be served (see :func:`load_for_serving`).
    """

    def __init__(self, runs_dir: str | Path, ref: str = "production", poll_seconds: float = 2.0) -> None:
        self.runs_dir, self.ref, self.poll_seconds = Path(runs_dir), ref, float(poll_seconds)
        self.follows = ref == "production"
        self._signature = self._pointer()
        self.current: ServedRun = load_for_serving(self.runs_dir, ref)
        self.loaded_at = _now()
        self.refused: dict[str, str] | None = None
        self.swaps = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _pointer(self) -> tuple[Any, ...]:
        """What identifies the pointer's state: mtime, size and content (None when absent)."""
        path = production_file(self.runs_dir)
        try:
            st = path.stat()
            return st.st_mtime_ns, st.st_size, path.read_bytes()
        except OSError:
            return (None,)

    def check(self) -> bool:
        """Look at ``runs/PRODUCTION`` once; load and swap in a newly promoted run.

        Returns
        -------
        bool
            True when a new run was swapped in.
        """
        if not self.follows:
            return False
        signature = self._pointer()
        if signature == self._signature:
            return False
        self._signature = signature
        run_id = "?"
        try:
            run_id = production_id(self.runs_dir) or "?"
            if run_id == self.current.run_id:  # pointed back at the served run: nothing refused any more
                self.refused = None
                return False
            new = load_for_serving(self.runs_dir, run_id)
        except (RecsysLabError, OSError) as exc:
            self.refused = {"run_id": run_id, "reason": f"{type(exc).__name__}: {exc}", "at": _now()}
            log.error("production run %s refused, still serving %s: %s", run_id, self.current.run_id, exc)
            return False
        old, self.current = self.current, new  # the swap: one reference assignment
        self.loaded_at, self.refused, self.swaps = _now(), None, self.swaps + 1
        for path in [p for p in saved_run._CACHE if p not in (old.path, new.path)]:
            saved_run._CACHE.pop(path, None)  # keep the new run and the one in-flight requests may still use
        log.info("now serving %s (was %s)", new.run_id, old.run_id)
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise; it is logged
                log.exception("checking the production pointer failed")

    def start(self) -> None:
        """Poll the pointer in a background thread (when following production)."""
        if self.follows:
            self._thread = threading.Thread(target=self._loop, name="recsys-lab-follow", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def health(self) -> dict[str, Any]:
        """The served run as ``/health`` shows it.

        Returns
        -------
        dict
            ``run_id``, ``follows`` (production), ``loaded_at``, ``update_version`` (latest, or None), ``items``,
            ``users``, ``swaps``, ``refused``.
        """
        m = self.current
        try:
            upd = load_version(m, "latest")
            version = upd.name if upd is not None else None
        except RecsysLabError as exc:
            version = f"unreadable: {exc}"
        return {"run_id": m.run_id, "follows": "production" if self.follows else self.ref, "loaded_at": self.loaded_at,
                "update_version": version, "items": len(m.item_ids), "users": len(m.user_ids), "swaps": self.swaps,
                "refused": self.refused}
