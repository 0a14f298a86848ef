"""Atomic file writes: write a temp file in the same directory, fsync, then ``os.replace``.

A reader sees either the old file or the complete new one, never a half-written file, even if the writer
is killed (``kill -9``) mid-write. The file gets the mode a plain ``open(path, "w")`` would give it
(``0o666`` less the process umask: ``0644`` under the usual ``022``), not the ``0600`` of ``mkstemp``.
"""

from __future__ import annotations

import json
import pickle
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_write_with", "load_pickle"]


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


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


def load_pickle(path: str | Path, expected: type, error: type[Exception], what: str) -> Any:
    """Unpickle ``path`` and check its type; failures raise ``error`` naming the file and what was expected."""
    try:
        with open(path, "rb") as fh:
            obj = pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise error(f"{path}: cannot load {what} ({exc})") from exc
    if not isinstance(obj, expected):
        raise error(f"{path}: not a {expected.__name__} but {type(obj).__name__}")
    return obj
