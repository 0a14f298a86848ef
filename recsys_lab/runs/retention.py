"""Removing old runs (``recsys-lab runs gc``): the folders listed directly under the runs directory, never a path
read from a manifest.

issue 17: gc used to delete ``runs/<run_id>`` with the ``run_id`` written inside ``run.json``: ``""`` deleted the
whole runs directory, ``"../victim"`` or an absolute path a folder outside it. Now each folder is deleted by the
path it was listed at, after checking it is a real folder directly under the runs directory (resolved, not a
symlink out) and not production (by resolved path, also when ``runs/PRODUCTION`` holds a unique prefix); a
``runs/PRODUCTION`` that names no single run stops gc before anything is removed.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from recsys_lab.errors import RunError
from recsys_lab.runs.production import production_id, run_folders
from recsys_lab.runs.registry import manifest_of
from recsys_lab.store.folder import effective_status

__all__ = ["gc"]

log = logging.getLogger(__name__)


def _production_folder(runs_dir: Path) -> Path | None:
    """The production run's resolved folder (None without production); an unreadable pointer raises RunError."""
    pid = production_id(runs_dir)
    return (runs_dir / pid).resolve() if pid else None


def _deletable(folder: Path, root: Path) -> bool:
    """Whether ``folder`` is a real folder directly under ``root`` (resolved), not a symlink out of it."""
    return not folder.is_symlink() and folder.is_dir() and folder.resolve().parent == root


def gc(runs_dir: str | Path, keep: int, *, dry_run: bool = False) -> list[str]:
    """Remove all but the ``keep`` newest runs, never the production run nor a live ``running`` one.

    The folders are listed directly under ``runs_dir`` (newest first by ``started_at``, then name) and each is
    deleted by the path it was found at, never by the ``run_id`` written inside its manifest. A symlinked or
    otherwise foreign entry is kept (with a warning), and the production run is recognised by its resolved path
    (``runs/PRODUCTION`` may hold a unique prefix).

    Parameters
    ----------
    runs_dir : str or Path
    keep : int
        How many of the newest runs to keep (>= 0).
    dry_run : bool
        Only say which runs would be removed (the same list a real gc removes).

    Returns
    -------
    list of str
        Removed (or, with ``dry_run``, removable) run folder names.

    Raises
    ------
    RunError
        ``keep`` < 0, a manifest cannot be read, or ``runs/PRODUCTION`` names no single run (a path, an unknown id,
        garbage: the message names the file).
    """
    if keep < 0:
        raise RunError(f"--keep must be >= 0, got {keep}")
    runs_dir = Path(runs_dir)
    root = runs_dir.resolve()
    listed = []
    for folder in run_folders(runs_dir):
        m = manifest_of(folder)
        listed.append((str(m.get("started_at") or ""), folder.name, folder,
                       effective_status(m.get("status"), m.get("pid"), m.get("host"))))
    listed.sort(key=lambda row: (row[0], row[1]), reverse=True)
    production = _production_folder(runs_dir)
    removable = []
    for _, _, folder, status in listed[keep:]:
        if status == "running" or folder.resolve() == production:
            continue
        if not _deletable(folder, root):
            log.warning("%s: not a run folder directly under %s (a symlink?): kept", folder, runs_dir)
            continue
        removable.append(folder)
    if not dry_run:
        for folder in removable:
            shutil.rmtree(folder)
    return [folder.name for folder in removable]
