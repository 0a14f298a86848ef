"""The run folder: the single owner of the layout of ``runs/<run_id>/`` and of its manifest ``run.json``.

Layout of ``runs/<run_id>/`` (every name below is a property of :class:`RunFolder`; nothing else in the
package spells these file names):

====================  ==========================================================================
``run.json``          the manifest: status, times, pid, git commit, package versions, data snapshot,
                      config, phase timings, gate outcome, promotion, error
``params.json``       the configuration the notebook ran with
``metrics.json``      flat metrics (model, ``baseline.*``, ``ann.*``, ``split.*``, ``drift.*``)
``history.json``      per-epoch history of each fitted model
``data.json``         the data the run saw (snapshot id, content hash, guardrails, split statistics)
``gate.json``         the metric gate's outcome as the notebook decided it
``timings.json``      wall seconds per phase as measured inside the notebook
``retrain.ipynb``     the executed notebook (kept when a cell fails)
``report.html``       the notebook as HTML
``executor.log``      output of the child process (``--engine kernel`` only)
``artifacts/``        ``id_maps.npz``, ``embeddings.npz``, ``features.npz``, ``model.npz``, ``index.npz``,
                      ``split.npz``, ``blend.npz``, ``per_user_metrics.parquet`` (read and written only by
                      :mod:`recsys_lab.store.artifacts`), ``updates/`` (:mod:`recsys_lab.serving.updates`)
====================  ==========================================================================

Next to the run folders, ``runs/PRODUCTION`` holds the production run id and ``runs/.retrain.lock`` is the
retrain lock (:mod:`recsys_lab.runs.lock`). Status is one of :data:`STATUSES`; ``crashed`` is never written: it is
what a ``running`` manifest whose owner process is gone reads as (:func:`effective_status`).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys_lab._fs import atomic_write_json
from recsys_lab.errors import RunError

__all__ = ["RunFolder", "STATUSES", "PRODUCTION", "LOCK", "utc_now", "new_run_id", "git_info", "read_json",
           "read_json_optional", "read_manifest", "read_run", "update_manifest", "pid_alive", "effective_status",
           "production_file", "lock_file"]

STATUSES = ("running", "succeeded", "failed", "timed_out", "crashed")
"""Run statuses; ``crashed`` is derived (a ``running`` run whose process is gone), never written."""
PRODUCTION = "PRODUCTION"
"""Name of the production pointer file in a runs directory."""
LOCK = ".retrain.lock"
"""Name of the retrain lock file in a runs directory."""

_CODE_ROOT = Path(__file__).resolve().parent.parent.parent


def utc_now() -> str:
    """Current UTC time, ISO 8601 with seconds (e.g. ``2026-01-01T03:00:00+00:00``).

    Returns
    -------
    str
    """
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A new run id ``YYYYmmddTHHMMSSZ-xxxxxx``: sortable by start time (UTC), unique by a random suffix.

    Returns
    -------
    str
        e.g. ``20260101T030000Z-1a2b3c`` (6 random hex digits).
    """
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def git_info(root: str | Path = _CODE_ROOT) -> dict[str, Any]:
    """The git commit of the checkout holding the code.

    Parameters
    ----------
    root : str or Path
        Folder inside the checkout (default: the one holding this package).

    Returns
    -------
    dict
        ``{"commit": sha or None, "dirty": bool or None}``; both None outside a git checkout or without git.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout
        return {"commit": sha, "dirty": bool(status.strip()) if sha else None}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file written by recsys_lab.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the message (e.g. ``"run manifest"``).

    Returns
    -------
    Any
        The parsed JSON value (a dict for every file of a run folder).

    Raises
    ------
    RunError
        The file is missing, unreadable, not UTF-8 or not valid JSON; the message names the file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path}: no {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{path}: cannot read the {what} ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: the {what} is not valid JSON ({exc})") from exc


def read_json_optional(path: str | Path, what: str = "file") -> Any:
    """Like :func:`read_json`, but a missing file reads as ``{}``.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file is, for the message.

    Returns
    -------
    Any
        The parsed JSON value, or ``{}`` when the file does not exist.

    Raises
    ------
    RunError
        The file exists but is unreadable or not valid JSON (a damaged file is never taken for a missing one).
    """
    if not Path(path).exists():
        return {}
    return read_json(path, what)


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest ``run.json`` of a run folder.

    Parameters
    ----------
    run_dir : str or Path

    Returns
    -------
    dict
        The manifest (see the module docstring for its keys).

    Raises
    ------
    RunError
        No manifest, or it is not valid JSON.
    """
    path = RunFolder(run_dir).run_json
    if not path.is_file():
        raise RunError(f"{path}: no run manifest (not a run folder?)")
    return read_json(path, "run manifest")


read_run = read_manifest
"""Alias of :func:`read_manifest`."""


def update_manifest(run_dir: str | Path, **changes: Any) -> dict[str, Any]:
    """Set top-level keys of a run's manifest (atomic rewrite).

    Parameters
    ----------
    run_dir : str or Path
    **changes
        Top-level keys and their new values.

    Returns
    -------
    dict
        The new manifest.

    Raises
    ------
    RunError
        No manifest, or it is not valid JSON.
    """
    manifest = read_manifest(run_dir)
    manifest.update(changes)
    atomic_write_json(RunFolder(run_dir).run_json, manifest)
    return manifest


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this id exists on this host (False for None or 0).

    Parameters
    ----------
    pid : int or None
        Process id.

    Returns
    -------
    bool
        True also when the process exists but belongs to another user (``PermissionError`` on signal 0).
    """
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def effective_status(status: str, pid: int | None, host: str | None) -> str:
    """``crashed`` for a ``running`` run of this host whose process is gone, else ``status`` unchanged.

    Parameters
    ----------
    status : str
        The status recorded in the manifest.
    pid : int or None
        Process id recorded in the manifest.
    host : str or None
        Host name recorded in the manifest; a run of another host is never declared crashed.

    Returns
    -------
    str
    """
    if status == "running" and host == socket.gethostname() and not pid_alive(pid):
        return "crashed"
    return status


def production_file(runs_dir: str | Path) -> Path:
    """``runs/PRODUCTION``: the file holding the production run id.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.

    Returns
    -------
    Path
        The path (the file need not exist).
    """
    return Path(runs_dir) / PRODUCTION


def lock_file(runs_dir: str | Path) -> Path:
    """``runs/.retrain.lock``: the retrain lock of a runs directory.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.

    Returns
    -------
    Path
        The path (the file need not exist).
    """
    return Path(runs_dir) / LOCK


class RunFolder:
    """One run folder ``runs/<run_id>/``: where each file of a run lives, and its manifest.

    Parameters
    ----------
    path : str or Path
        The run folder (need not exist yet).

    Examples
    --------
    >>> folder = RunFolder("runs/20260101T030000Z-abcdef")
    >>> folder.metrics.name, folder.embeddings.parent.name
    ('metrics.json', 'artifacts')
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def run_id(self) -> str:
        """The run id (the folder's name)."""
        return self.path.name

    @property
    def runs_dir(self) -> Path:
        """The runs directory holding this folder."""
        return self.path.parent

    # -- files -------------------------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def params(self) -> Path:
        return self.path / "params.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history(self) -> Path:
        return self.path / "history.json"

    @property
    def data(self) -> Path:
        return self.path / "data.json"

    @property
    def gate(self) -> Path:
        return self.path / "gate.json"

    @property
    def timings(self) -> Path:
        return self.path / "timings.json"

    @property
    def notebook(self) -> Path:
        """The executed notebook ``retrain.ipynb``."""
        return self.path / "retrain.ipynb"

    @property
    def executor_log(self) -> Path:
        """``executor.log``: stdout and stderr of the kernel engine's child process."""
        return self.path / "executor.log"

    @property
    def report(self) -> Path:
        """``report.html``, the executed notebook as HTML."""
        return self.path / "report.html"

    @property
    def artifacts(self) -> Path:
        return self.path / "artifacts"

    @property
    def id_maps(self) -> Path:
        """``artifacts/id_maps.npz``: ``user_ids``, ``item_ids`` (external ids by internal index)."""
        return self.artifacts / "id_maps.npz"

    @property
    def embeddings(self) -> Path:
        """``artifacts/embeddings.npz``: ``user_vecs`` (n_users, d+1), ``item_vecs`` (n_items, d+1) float32."""
        return self.artifacts / "embeddings.npz"

    @property
    def features(self) -> Path:
        """``artifacts/features.npz``: ``user_tokens``, ``item_tokens``."""
        return self.artifacts / "features.npz"

    @property
    def model(self) -> Path:
        """``artifacts/model.npz``: the fitted LightFM model as arrays (never a pickle)."""
        return self.artifacts / "model.npz"

    @property
    def legacy_model(self) -> Path:
        """``artifacts/model.pkl``: the pickled model of older runs, never loaded (a pickle can run code)."""
        return self.artifacts / "model.pkl"

    @property
    def index(self) -> Path:
        """``artifacts/index.npz``: the ANN index as arrays (:meth:`recsys_lab.retrieval.ann.MipsIndex.to_arrays`)."""
        return self.artifacts / "index.npz"

    @property
    def blend(self) -> Path:
        """``artifacts/blend.npz``: the ranking stage's blend as vectors, when the run serves it (``rank.serve``)."""
        return self.artifacts / "blend.npz"

    @property
    def per_user_metrics(self) -> Path:
        """``artifacts/per_user_metrics.parquet``: metrics per evaluated user (for paired comparisons)."""
        return self.artifacts / "per_user_metrics.parquet"

    @property
    def split(self) -> Path:
        """``artifacts/split.npz``: what the run trained on, in its index space: CSR arrays ``seen_indptr``,
        ``seen_indices`` (every training interaction: excluded when serving) and ``pos_indptr``, ``pos_indices``
        (training positives: popularity, and who has a trained vector)."""
        return self.artifacts / "split.npz"

    @property
    def personas(self) -> Path:
        """``personas.json``: every persona's top-k from this run (:mod:`recsys_lab.evaluation.personas`)."""
        return self.path / "personas.json"

    @property
    def updates(self) -> Path:
        """``artifacts/updates/``: fold-in updates applied after the run."""
        return self.artifacts / "updates"

    # -- manifest ----------------------------------------------------------------------------------------
    def exists(self) -> bool:
        """Whether the folder holds a manifest.

        Returns
        -------
        bool
            True when ``run.json`` is a file.
        """
        return self.run_json.is_file()

    def manifest(self) -> dict[str, Any]:
        """The manifest (see :func:`read_manifest`).

        Returns
        -------
        dict of str to Any

        Raises
        ------
        RunError
            No manifest, or it is not valid JSON.
        """
        return read_manifest(self.path)

    def update(self, **changes: Any) -> dict[str, Any]:
        """Set top-level manifest keys (see :func:`update_manifest`).

        Parameters
        ----------
        **changes : Any
            Manifest keys and their new values (JSON-serialisable).

        Returns
        -------
        dict of str to Any
            The manifest as written.

        Raises
        ------
        RunError
            No manifest, or it is not valid JSON.
        """
        return update_manifest(self.path, **changes)

    @classmethod
    def create(cls, runs_dir: str | Path, manifest: dict[str, Any], run_id: str | None = None) -> "RunFolder":
        """Create ``runs_dir/<run_id>/`` and write its first manifest.

        Parameters
        ----------
        runs_dir : str or Path
        manifest : dict
            Manifest fields; ``run_id`` is set by this function.
        run_id : str, optional
            Default: :func:`new_run_id`.

        Returns
        -------
        RunFolder
            The new folder, holding ``run.json``.

        Raises
        ------
        FileExistsError
            A folder with this run id exists.
        """
        run_id = run_id or new_run_id()
        folder = cls(Path(runs_dir) / run_id)
        folder.path.mkdir(parents=True, exist_ok=False)
        atomic_write_json(folder.run_json, {"run_id": run_id, **manifest})
        return folder
