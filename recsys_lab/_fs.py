"""Atomic file writes: write a temp file in the same directory, fsync, then ``os.replace``.

A reader sees either the old file or the complete new one, never a half-written file, even if the writer
is killed (``kill -9``) mid-write. The file gets the mode a plain ``open(path, "w")`` would give it
(``0o666`` less the process umask: ``0644`` under the usual ``022``), not the ``0600`` of ``mkstemp``.

The temp file is ``.<name>.<8 random characters>.tmp`` next to the target (:func:`is_temp_name`); a writer killed
between creating and renaming it leaves it behind, and :func:`remove_stale_temps` removes such files once they are
older than a minute (the run layer calls it at each start).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_with",
           "TEMP_SUFFIX", "temp_file_for", "is_temp_name", "remove_stale_temps"]

TEMP_SUFFIX = ".tmp"
"""Suffix of the temp files of atomic writes."""
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}" + re.escape(TEMP_SUFFIX))  # mkstemp's 8 random characters


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then rename ``tmp_path`` over ``path``; the temp file never survives a failure.

    Parameters
    ----------
    path : str or Path
        Target file; its folder is created when missing.
    write : callable
        Writes the complete content to the temp path it is given.

    Returns
    -------
    Path
        ``path``, with mode ``0o666 & ~umask``.

    Raises
    ------
    OSError
        Writing, syncing or renaming failed (e.g. disk full); ``path`` is unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = temp_file_for(path)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def temp_file_for(path: str | Path) -> Path:
    """Create the (empty) temp file an atomic write of ``path`` writes to: ``.<name>.<random>.tmp`` beside it.

    Parameters
    ----------
    path : str or Path
        The target file (its folder must exist).

    Returns
    -------
    Path
        The new temp file (mode ``0600``); :func:`is_temp_name` recognises its name.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def is_temp_name(name: str) -> bool:
    """Whether a file name is that of an atomic write's temp file (:func:`temp_file_for`).

    Parameters
    ----------
    name : str
        A file name (no folder).

    Returns
    -------
    bool
        True for ``.<name>.<8 characters of a-z, 0-9, _>.tmp``.
    """
    return _TEMP_NAME.fullmatch(name) is not None


def remove_stale_temps(root: str | Path, *, min_age: float = 60.0, skip: Iterable[Path] = ()) -> list[Path]:
    """Remove the temp files that killed atomic writes left under ``root``: only names :func:`is_temp_name`
    accepts, only regular files (never a symlink), only those last modified more than ``min_age`` seconds ago.

    Parameters
    ----------
    root : str or Path
        The folder to walk (symlinked folders are not followed).
    min_age : float
        Seconds since the last modification (default a minute: a write in progress is never touched).
    skip : iterable of Path
        Folders (under ``root``) not to walk, e.g. a live run's.

    Returns
    -------
    list of Path
        The files removed (one that vanished or could not be removed is left out).
    """
    root = Path(root)
    skipped = {os.path.normpath(p) for p in skip}
    cutoff = time.time() - min_age
    removed = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if os.path.normpath(os.path.join(folder, d)) not in skipped]
        for name in files:
            if not is_temp_name(name):
                continue
            path = Path(folder, name)
            try:
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue
    return removed


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write_with(path, lambda p: p.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically (NaN is written as null)."""
    return atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=False, default=str) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


