"""The production pointer ``runs/PRODUCTION``: the one stored reference to a run, read, moved and reconciled here.

A run reference (what a command is given, and what ``runs/PRODUCTION`` stores) names an entry directly under the
runs directory, never a path (:func:`check_reference`). ``runs/PRODUCTION`` holds a full run id, checked on read
(:func:`production_id`: a path, an unknown id or garbage is a :class:`recsys_lab.errors.RunError` naming the file; a
unique prefix written by older versions still resolves) and on write (:func:`point`).

Moving the pointer is recorded in the promoted run's ``run.json`` so that a kill never leaves them disagreeing
(issue 17: a kill between the two writes left ``promoted: false`` after the pointer moved). :func:`point` writes
the intent first (``promotion.pending``: the previous production run, the promoting process and when), then
replaces ``runs/PRODUCTION`` atomically, then records the promotion done (``promoted: true``, ``promotion.done``,
``pending`` removed). :func:`reconcile` settles the intent a killed process left: when the pointer moved it is
recorded done, else not done with the reason. It runs before every move and at every start (retrain, ``runs
list/show/promote``: :func:`recsys_lab.runs.registry.recover`); an intent whose process is still alive is left
alone (it is being carried out).
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from recsys_lab._fs import atomic_write_text
from recsys_lab.errors import RunError
from recsys_lab.store.folder import RunFolder, pid_alive, production_file, utc_now

__all__ = ["check_reference", "run_folders", "production_id", "point", "reconcile"]

log = logging.getLogger(__name__)


def check_reference(runs_dir: str | Path, ref: str) -> str:
    """A run reference as given, once it is known to name an entry directly under the runs directory.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (or the file holding the reference), for the message.
    ref : str
        A run id or prefix (also what ``runs/PRODUCTION`` holds).

    Returns
    -------
    str
        ``ref`` unchanged.

    Raises
    ------
    RunError
        ``ref`` is empty, starts with ``.`` (``..`` and hidden files included), is an absolute path or holds a path
        separator, a NUL or a line break.
    """
    if (not ref or ref.startswith(".") or "/" in ref or "\\" in ref or os.sep in ref or "\0" in ref
            or "\n" in ref or Path(ref).is_absolute()):
        raise RunError(f"{runs_dir}: {ref!r} is not a run reference (a run id or its prefix, 'production' or "
                       "'latest'; never a path)")
    return ref


def run_folders(runs_dir: Path) -> list[Path]:
    """Entries directly under ``runs_dir`` that hold a ``run.json``.

    Parameters
    ----------
    runs_dir : Path
        The runs directory.

    Returns
    -------
    list of Path
        ``runs_dir/<name>`` sorted by name (symlinked folders included); [] when ``runs_dir`` is not a folder.
    """
    if not runs_dir.is_dir():
        return []
    return sorted(p for p in runs_dir.iterdir() if RunFolder(p).exists())


def _pointer_text(runs_dir: Path) -> str | None:
    """What ``runs/PRODUCTION`` holds, stripped (None when there is no file or it is empty)."""
    path = production_file(runs_dir)
    if not path.is_file():
        return None
    try:
        text = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise RunError(f"{path}: holds bytes that are not a run id (not UTF-8): promote a run to replace it "
                       "(`recsys-lab runs promote ID`)") from None
    except OSError as exc:
        raise RunError(f"{path}: cannot read the production pointer ({exc.strerror or exc})") from exc
    return text or None


def production_id(runs_dir: str | Path = "runs") -> str | None:
    """The production run id, checked: ``runs/PRODUCTION`` must name one run folder directly under ``runs_dir``.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory (default ``runs``).

    Returns
    -------
    str or None
        The full run id; None when there is no production run (no file, or an empty one). A unique prefix
        (written by older versions) resolves to the full id; the next promotion rewrites the file with it.

    Raises
    ------
    RunError
        The file holds a path, ``..``, an id or prefix that names no single run, or bytes that are not text; the
        message names the file.
    """
    runs_dir = Path(runs_dir)
    text = _pointer_text(runs_dir)
    if text is None:
        return None
    path = production_file(runs_dir)
    check_reference(path, text)
    hits = [p.name for p in run_folders(runs_dir) if p.name.startswith(text)]
    if text in hits:
        return text
    if len(hits) == 1:
        return hits[0]
    raise RunError(f"{path}: holds {text!r}, which names no single run in {runs_dir} ({len(hits) or 'no'} runs "
                   "match): promote a run to replace it (`recsys-lab runs promote ID`)")


def _write_pointer(runs_dir: Path, run_id: str) -> None:
    """Replace ``runs/PRODUCTION`` atomically with ``run_id``."""
    atomic_write_text(production_file(runs_dir), run_id + "\n")


def _previous(runs_dir: Path) -> str | None:
    """The production run before a move, for the intent (None also when the pointer is unreadable)."""
    try:
        return production_id(runs_dir)
    except RunError:
        return None


def point(runs_dir: str | Path, run_id: str) -> dict[str, Any]:
    """Make ``run_id`` production: the intent in its ``run.json``, then ``runs/PRODUCTION``, then the record.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run_id : str
        The full id of a run folder directly under ``runs_dir`` (checked; the caller decided the promotion).

    Returns
    -------
    dict
        The run's manifest as written: ``promoted`` true, ``promotion.done`` true, ``promotion.reason`` None.

    Raises
    ------
    RunError
        ``run_id`` is not a run folder directly under ``runs_dir``.
    OSError
        A write failed; whatever was written is settled by the next :func:`reconcile`.
    """
    runs_dir = Path(runs_dir)
    folder = RunFolder(runs_dir / check_reference(runs_dir, run_id))
    if not folder.exists() or folder.path.is_symlink():
        raise RunError(f"{folder.path}: not a run folder directly under {runs_dir}: refusing to point "
                       f"{production_file(runs_dir)} at it")
    reconcile(runs_dir)
    promotion = folder.manifest().get("promotion")
    promotion = {k: v for k, v in promotion.items() if k != "pending"} if isinstance(promotion, dict) else {}
    intent = {"previous": _previous(runs_dir), "pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
    folder.update(promotion={**promotion, "pending": intent})
    _write_pointer(runs_dir, run_id)
    manifest = folder.update(promoted=True, promotion={**promotion, "done": True, "reason": None})
    log.info("promoted %s", run_id)
    return manifest


def _in_progress(intent: dict[str, Any]) -> bool:
    """Whether the process that wrote a promotion intent may still be carrying it out."""
    if intent.get("host") != socket.gethostname():
        return True  # another host's process: cannot tell, leave it to that host
    pid = intent.get("pid")
    return pid != os.getpid() and pid_alive(pid if isinstance(pid, int) else None)


def reconcile(runs_dir: str | Path) -> list[str]:
    """Settle the promotion intents left by killed processes: done when ``runs/PRODUCTION`` moved, else not done.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.

    Returns
    -------
    list of str
        The run ids whose intent was settled (each logged as a warning).

    Raises
    ------
    OSError
        A manifest could not be rewritten.
    """
    runs_dir = Path(runs_dir)
    settled = []
    current: str | None = None
    looked = False
    for path in run_folders(runs_dir):
        folder = RunFolder(path)
        try:
            if b'"pending"' not in folder.run_json.read_bytes():  # the common case, without parsing
                continue
            manifest = folder.manifest()
        except (OSError, RunError):
            continue  # unreadable manifests are reported by the command that reads them
        promotion = manifest.get("promotion") if isinstance(manifest, dict) else None
        intent = promotion.get("pending") if isinstance(promotion, dict) else None
        if not isinstance(intent, dict) or _in_progress(intent):
            continue
        if not looked:
            current, looked = _previous(runs_dir), True
        rest = {k: v for k, v in promotion.items() if k != "pending"}
        if current == path.name:
            folder.update(promoted=True, promotion={**rest, "done": True, "reason": None})
            log.warning("run %s: the promotion interrupted at %s had moved %s; recorded done", path.name,
                        intent.get("since"), production_file(runs_dir))
        else:
            reason = (f"promotion interrupted (process {intent.get('pid')} ended at {intent.get('since')}) before "
                      f"{production_file(runs_dir).name} moved; production stayed {current or 'none'}")
            folder.update(promotion={**rest, "done": False, "reason": reason})
            log.warning("run %s: %s", path.name, reason)
        settled.append(path.name)
    return settled
