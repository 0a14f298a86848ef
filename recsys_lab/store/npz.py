"""``.npz`` files of a run, read and written without pickles (:mod:`recsys_lab.store.artifacts` owns which files
exist; it re-exports :func:`read_arrays` and :func:`write_arrays`)."""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from recsys_lab._fs import atomic_write_bytes
from recsys_lab.errors import RunError

__all__ = ["read_arrays", "write_arrays", "cannot_read"]

_DAMAGED = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
"""What numpy raises on a missing, truncated or damaged ``.npz`` (or a missing key)."""


def cannot_read(path: Path, exc: BaseException) -> RunError:
    """The error of a run file that cannot be read: ``"<path>: cannot read (...)"``.

    Parameters
    ----------
    path : Path
        The file.
    exc : BaseException
        What reading it raised (a missing file says so).

    Returns
    -------
    RunError
        To raise ``from exc``.
    """
    if isinstance(exc, FileNotFoundError):
        return RunError(f"{path}: cannot read (no such file: did the run succeed?)")
    return RunError(f"{path}: cannot read ({type(exc).__name__}: {exc})")


def read_arrays(path: str | Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of one ``.npz`` file of a run (no pickles).

    Parameters
    ----------
    path : str or Path
        The file, e.g. ``RunFolder(run).embeddings``.
    keys : tuple of str
        Arrays to read; each must be present.

    Returns
    -------
    dict of str to ndarray
        ``{key: array}``, read into memory.

    Raises
    ------
    RunError
        ``"<path>: cannot read (...)"``: missing, truncated or damaged file, or a key not in it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in keys}
    except _DAMAGED as exc:
        raise cannot_read(path, exc) from exc


def write_arrays(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write named arrays as one ``.npz`` file atomically (the counterpart of :func:`read_arrays`).

    Parameters
    ----------
    path : str or Path
        The file.
    **arrays : ndarray
        Arrays by name (no object arrays: they could not be read back without pickles).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        The write failed; ``path`` keeps its previous content.
    """
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())
