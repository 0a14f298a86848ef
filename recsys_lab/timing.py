"""Wall time and peak memory per phase of a job (seconds and MiB), as ``timings.json`` records them."""

from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["Phases", "peak_rss_mib"]

progress = logging.getLogger("recsys_lab.progress")
"""Phase by phase progress (INFO); ``recsys-lab retrain`` prints it as the run goes."""


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far.

    Returns
    -------
    float
        MiB (``getrusage``: KiB on Linux, bytes on macOS).
    """
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


class Phases:
    """Seconds per phase name (summed over repeats) and the peak RSS after each labelled phase.

    Attributes
    ----------
    timings : dict of str to float
        ``{phase: seconds, "peak_rss_mib.<label>": MiB}``; other figures may be added by the caller.
    """

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str, label: str | None = None) -> Iterator[None]:
        """Time the block under ``name`` and log its start and end as ``label``.

        Parameters
        ----------
        name : str
            Phase whose seconds the block adds to (``ingest``, ``features``, ``fit``, ``index``, ``evaluate``, ...).
        label : str or None
            What the progress line calls it (default ``name``); the peak RSS is recorded under it.

        Yields
        ------
        None
        """
        t0, label = time.perf_counter(), label or name
        progress.info("%s ...", label)
        try:
            yield
        finally:
            seconds, peak = time.perf_counter() - t0, peak_rss_mib()
            self.timings[name] = self.timings.get(name, 0.0) + seconds
            self.timings[f"peak_rss_mib.{label}"] = peak  # the process's peak so far: MiB, not seconds
            progress.info("%s done in %.1f s (peak RSS %.0f MiB)", label, seconds, peak)
