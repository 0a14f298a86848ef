"""Start (or join) Ray once, robustly: local by default with this machine's CPUs, a cluster when asked.

On a loaded machine the raylet's agent can miss its registration deadline (ray-project/ray#65983) and
``ray.init`` fails; :func:`connect` raises those deadlines (:class:`RayOptions`), retries once, and turns the
failure into one line (:class:`RayStartError`) that names the cause. The dashboard and usage stats are off.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from recsys_lab.errors import ConfigError, RunError

__all__ = ["RayOptions", "RayStartError", "connect", "shutdown"]

log = logging.getLogger(__name__)


class RayStartError(RunError):
    """Ray did not start (or the cluster was not reachable); the message names the cause on one line."""


@dataclass(frozen=True)
class RayOptions:
    """How to reach Ray.

    Parameters
    ----------
    address : str or None
        A cluster (``ray://host:10001`` or ``auto``); None: ``$RAY_ADDRESS`` if set, else a local Ray.
    num_cpus : int or None
        CPUs of a local Ray (None: this machine's).
    start_timeout_s : float
        Deadline of the raylet's start and of its agent's registration (Ray's defaults are 10 s and 30 s; a
        loaded 2-core machine needs more).
    retries : int
        Further attempts after a failed start (default 1).
    """

    address: str | None = None
    num_cpus: int | None = None
    start_timeout_s: float = 120.0
    retries: int = 1

    def __post_init__(self) -> None:
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"num_cpus must be >= 1, got {self.num_cpus}", parameter="num_cpus")
        if not self.start_timeout_s > 0:
            raise ConfigError(f"start_timeout_s must be > 0, got {self.start_timeout_s}", parameter="start_timeout_s")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}", parameter="retries")

    @property
    def target(self) -> str | None:
        """The address asked for (``address``, else ``$RAY_ADDRESS``); None: local."""
        return self.address or os.environ.get("RAY_ADDRESS") or None


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 300 else text[:297] + "..."


def connect(options: RayOptions | None = None) -> float:
    """Start a local Ray or join a cluster (a no-op when this process is already connected).

    Parameters
    ----------
    options : RayOptions, optional
        Address, CPUs, timeouts and retries (default: local, this machine's CPUs).

    Returns
    -------
    float
        Seconds the start-up took (0.0 when already connected).

    Raises
    ------
    RayStartError
        Ray is not installed, or did not start / was not reachable after the retries (the cause on one line).
    """
    opts = options or RayOptions()
    try:
        import ray
    except ImportError as exc:
        raise RayStartError("ray is not installed: pip install 'recsys_lab[ray]'") from exc
    if ray.is_initialized():
        return 0.0
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # read by the raylet and its agent at process start (inherited environment)
    os.environ["RAY_raylet_start_wait_time_s"] = str(max(1, round(opts.start_timeout_s)))
    os.environ["RAY_agent_register_timeout_ms"] = str(int(opts.start_timeout_s * 1000))
    target = opts.target
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                  ignore_reinit_error=True)
    if target is None:
        kwargs["num_cpus"] = opts.num_cpus or os.cpu_count() or 1
    t0, last = time.perf_counter(), None
    for attempt in range(opts.retries + 1):
        try:
            ray.init(address=target, **kwargs)
            seconds = time.perf_counter() - t0
            log.info("ray started in %.1f s (%s)", seconds, target or "local")
            return seconds
        except Exception as exc:  # noqa: BLE001 - any start failure becomes one typed line
            last = exc
            log.warning("ray start attempt %d failed: %s", attempt + 1, _cause(exc))
            try:
                ray.shutdown()
            except Exception:  # noqa: BLE001
                pass
    where = target or f"local, {kwargs.get('num_cpus')} CPUs"
    raise RayStartError(f"ray did not start ({where}) after {opts.retries + 1} attempt(s), "
                        f"timeout {opts.start_timeout_s:g} s: {_cause(last)}") from last


def shutdown() -> None:
    """Disconnect from Ray (stops a local Ray this process started); a no-op when not connected.

    Returns
    -------
    None
    """
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
