"""Typed exceptions and warnings of recsys_lab.

One root, :class:`RecsysLabError`; subclasses are named for the situation and carry the context a user
needs (file, line, column, parameter) as attributes as well as in the message.
Modelled on papermill's ``exceptions.py`` (one root, a structured execution error).
"""

from __future__ import annotations

__all__ = [
    "RecsysLabError",
    "ConfigError",
    "DataError",
    "DataFileError",
    "DataValidationError",
    "DownloadError",
    "ModelError",
    "RunError",
    "RunFailedError",
    "RecsysLabWarning",
    "PerformanceWarning",
]


class RecsysLabError(Exception):
    """Root of every error raised on purpose by recsys_lab."""


class ConfigError(RecsysLabError, ValueError):
    """A configuration value or parameter is unknown, of the wrong type or out of range.

    Attributes
    ----------
    parameter : str or None
        Dotted name of the offending parameter, e.g. ``"model.epochs"``.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {message}" if parameter else message)


class DataError(RecsysLabError):
    """Root of the data errors: missing, unreadable or invalid input data."""


class DataFileError(DataError):
    """An input file is missing, truncated or malformed.

    Attributes
    ----------
    path : str
        The file (or ``zip!member``) that failed.
    line : int or None
        1-based line number of the first bad line, when known.
    column : str or None
        Name of the bad column, when known.
    """

    def __init__(self, path: str, message: str, *, line: int | None = None,
                 column: str | None = None) -> None:
        self.path, self.line, self.column = str(path), line, column
        where = self.path
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


class DataValidationError(DataError):
    """Loaded data breaks a rule (nulls, duplicates, out-of-range values, unknown ids).

    Attributes
    ----------
    failures : list of dict
        One entry per failed check: ``{"check", "table", "column", "count", "examples"}``.
    """

    def __init__(self, message: str, *, failures: list[dict] | None = None) -> None:
        self.failures = failures or []
        super().__init__(message)


class DownloadError(DataError):
    """Fetching a dataset failed or its checksum did not match; no partial file is left behind."""


class ModelError(RecsysLabError):
    """Training diverged or a model cannot be used as asked (e.g. non-finite embeddings)."""


class RunError(RecsysLabError):
    """A run folder or the run lifecycle is in a state that does not allow the operation."""


class RunFailedError(RunError):
    """A retrain notebook failed. The executed notebook with the failing cell is kept.

    Attributes
    ----------
    run_dir : str
        The run folder.
    cell_index : int or None
        Index of the failing cell in the executed notebook.
    ename, evalue : str or None
        Exception name and value raised in the kernel.
    """

    def __init__(self, run_dir: str, reason: str, *, cell_index: int | None = None,
                 ename: str | None = None, evalue: str | None = None) -> None:
        self.run_dir, self.cell_index, self.ename, self.evalue = str(run_dir), cell_index, ename, evalue
        self.reason = reason
        super().__init__(f"run {run_dir} failed: {reason}")


class RecsysLabWarning(UserWarning):
    """Root of recsys_lab's warnings."""


class PerformanceWarning(RecsysLabWarning):
    """A slow or degraded path was taken (e.g. LightFM without OpenMP: single-threaded fit)."""
