"""The sweep file (``sweep.toml``): the base config, the search space over config keys, the search and the
scheduler, and where Ray runs. Read and checked before Ray starts: a bad space is a :class:`ConfigError`.

Example
-------
::

    [sweep]
    config = "config.toml"        # base config (relative to this file); default: the defaults
    params = {"model.epochs" = 20} # overrides of the base config, for every trial and the base run
    search = "random"             # "grid" (every combination of lists), "random" (`samples` seeded draws) or
                                  # "optuna" (`samples` trials proposed by Optuna's TPE sampler through Tune)
    samples = 16
    scheduler = "asha"            # "asha" (stops hopeless trials at epoch milestones) or "none"
    grace_epochs = 2
    top = 1                       # best trials re-run as ordinary retrains and compared with the base config
    [sweep.space]
    "model.no_components" = [32, 64, 128]           # a choice (grid: every value)
    "model.learning_rate" = {loguniform = [0.01, 0.1]}
    "model.max_sampled" = {randint = [10, 100]}     # low inclusive, high exclusive
    "model.item_alpha" = {uniform = [0.0, 1e-4]}
    [ray]
    address = ""                  # empty: $RAY_ADDRESS or a local Ray
    num_cpus = 2
    start_timeout_s = 120
    retries = 1

Trials share one snapshot and split, so only ``model.*`` keys can vary (and not ``model.num_threads``: one
thread per trial).
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys_lab.config import Config, load_config
from recsys_lab.errors import ConfigError
from recsys_lab.scale.cluster import RayOptions

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["DISTRIBUTIONS", "SEARCHES", "SweepConfig", "load_sweep", "expand", "tune_space"]

DISTRIBUTIONS = ("choice", "uniform", "loguniform", "randint")
"""Distributions a key of ``sweep.space`` may take (a plain list is a ``choice``)."""

SEARCHES = ("grid", "random", "optuna")
"""Searches a sweep file may name."""

_FIXED = ("model.num_threads",)
_OPTUNA_CHOICE = (str, int, float, bool, type(None))  # what Optuna's CategoricalDistribution takes


def _dimension(key: str, spec: Any, base: Config, search: str) -> tuple[str, list]:
    """``(distribution, arguments)`` of one key, every value checked against the config schema."""
    if not key.startswith("model.") or key in _FIXED:
        raise ConfigError("trials share one snapshot and split: only model.* keys (not model.num_threads) can vary",
                          parameter=f"sweep.space.{key}")
    if isinstance(spec, list):
        dist, args = "choice", spec
    elif isinstance(spec, dict) and len(spec) == 1:
        dist, args = next(iter(spec.items()))
    else:
        raise ConfigError("expected a list of values or one {distribution = [...]} ("
                          + ", ".join(DISTRIBUTIONS) + ")", parameter=f"sweep.space.{key}")
    where = f"sweep.space.{key}"
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"unknown distribution {dist!r}; expected one of {', '.join(DISTRIBUTIONS)}", parameter=where)
    if not isinstance(args, list) or not args:
        raise ConfigError(f"{dist}: expected a non-empty list", parameter=where)
    if dist != "choice":
        if search == "grid":
            raise ConfigError(f"grid search takes lists of values, not {dist}", parameter=where)
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ConfigError(f"{dist}: expected [low, high] numbers, got {args!r}", parameter=where)
        low, high = args
        if not low < high:
            raise ConfigError(f"{dist}: low {low} must be below high {high}", parameter=where)
        if dist == "loguniform" and low <= 0:
            raise ConfigError(f"loguniform: low must be > 0, got {low}", parameter=where)
        if dist == "randint" and not (isinstance(low, int) and isinstance(high, int)):
            raise ConfigError(f"randint: expected integers, got {args!r}", parameter=where)
        values = [low, high - 1] if dist == "randint" else [low, high]
    else:
        values = args
        if search == "optuna" and not all(isinstance(a, _OPTUNA_CHOICE) for a in args):
            raise ConfigError(f"optuna: a choice takes strings, numbers, booleans or null, got {args!r}",
                              parameter=where)
    for value in values:
        base.replace({key: value})  # an unknown key or a bad value: ConfigError naming the parameter
    return dist, args


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep file (see the module docstring).

    Parameters
    ----------
    base : Config
        The base configuration (every trial starts from it; the comparison's reference).
    space : dict of str to tuple
        ``key -> (distribution, arguments)``.
    search : str
        ``grid``, ``random`` or ``optuna``.
    samples : int
        Trials of a random or Optuna search, or repeats of the grid.
    scheduler : str
        ``asha`` or ``none``.
    grace_epochs : int
        ASHA: epochs every trial runs before it can be stopped.
    top : int
        Best trials re-run as ordinary retrains (0: none).
    seed : int
        Seed of the random search (and of Optuna's sampler).
    max_concurrent : int
        Trials at once (0: one per CPU).
    ray : RayOptions
    """

    base: Config = field(default_factory=Config)
    space: dict[str, tuple[str, list]] = field(default_factory=dict)
    search: str = "random"
    samples: int = 8
    scheduler: str = "asha"
    grace_epochs: int = 2
    top: int = 1
    seed: int = 0
    max_concurrent: int = 0
    ray: RayOptions = field(default_factory=RayOptions)

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            raise ConfigError(f"expected one of {', '.join(SEARCHES)}, got {self.search!r}", parameter="sweep.search")
        if self.search == "optuna" and importlib.util.find_spec("optuna") is None:
            raise ConfigError("optuna is not installed: pip install 'recsys_lab[ray]'", parameter="sweep.search")
        if self.scheduler not in ("asha", "none"):
            raise ConfigError(f"expected 'asha' or 'none', got {self.scheduler!r}", parameter="sweep.scheduler")
        if not self.space:
            raise ConfigError("the search space is empty: give at least one key", parameter="sweep.space")
        for name in ("samples", "grace_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", parameter=f"sweep.{name}")
        for name in ("top", "max_concurrent"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", parameter=f"sweep.{name}")
        m = self.base.model
        if m.patience < 1 or self.base.split.validation_fraction <= 0:
            raise ConfigError("a sweep scores trials on validation: needs model.patience >= 1 and "
                              "split.validation_fraction > 0", parameter="model.patience")
        for key, spec in self.space.items():
            _dimension(key, list(spec[1]) if spec[0] == "choice" else {spec[0]: list(spec[1])}, self.base,
                       self.search)

    @property
    def trials(self) -> int:
        """How many trials the search runs."""
        if self.search != "grid":
            return self.samples
        return self.samples * math.prod(len(args) for _, args in self.space.values())


def load_sweep(path: str | Path) -> SweepConfig:
    """Read and check a sweep file (no Ray needed).

    Parameters
    ----------
    path : str or Path
        The TOML file.

    Returns
    -------
    SweepConfig

    Raises
    ------
    ConfigError
        Unreadable file, unknown setting, an empty space, an unknown key or distribution, or a bad value.
    """
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"sweep file {p}: cannot read ({exc})") from None
    unknown = set(doc) - {"sweep", "ray"}
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)}; expected sweep, ray", parameter=sorted(unknown)[0])
    s, r = dict(doc.get("sweep", {})), dict(doc.get("ray", {}))
    known = {"config", "params", "space", "search", "samples", "scheduler", "grace_epochs", "top", "seed",
             "max_concurrent"}
    for key in set(s) - known:
        raise ConfigError(f"unknown setting; expected one of {sorted(known)}", parameter=f"sweep.{key}")
    for key in set(r) - {"address", "num_cpus", "start_timeout_s", "retries"}:
        raise ConfigError("unknown setting; expected address, num_cpus, start_timeout_s, retries",
                          parameter=f"ray.{key}")
    config = s.pop("config", None)
    base = load_config(p.parent / config if config else None, dict(s.pop("params", {}) or {}))
    search = s.get("search", "random")
    space = {k: _dimension(k, v, base, search) for k, v in (s.pop("space", {}) or {}).items()}
    if r.get("address") == "":
        r["address"] = None
    return SweepConfig(base=base, space=space, ray=RayOptions(**r), **s)


def expand(sweep: SweepConfig) -> list[dict[str, Any]]:
    """The trials' overrides, drawn here (seeded) rather than by Ray, so a sweep is the same list every time.

    Parameters
    ----------
    sweep : SweepConfig

    Returns
    -------
    list of dict
        One ``{key: value}`` per trial, in order; empty for ``optuna`` (its sampler proposes each trial from the
        results so far: see :func:`tune_space`).
    """
    if sweep.search == "optuna":
        return []
    keys = list(sweep.space)
    if sweep.search == "grid":
        combos = itertools.product(*(sweep.space[k][1] for k in keys))
        return [dict(zip(keys, c)) for c in combos for _ in range(sweep.samples)]
    rng = random.Random(sweep.seed)

    def draw(dist: str, args: list) -> Any:
        if dist == "choice":
            return rng.choice(args)
        if dist == "uniform":
            return rng.uniform(*args)
        if dist == "loguniform":
            return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
        return rng.randrange(*args)
    return [{k: draw(*sweep.space[k]) for k in keys} for _ in range(sweep.samples)]


def tune_space(sweep: SweepConfig) -> dict[str, Any]:
    """The space as Ray Tune domains (for a search algorithm that draws its own trials, Optuna's).

    Parameters
    ----------
    sweep : SweepConfig

    Returns
    -------
    dict of str to ray.tune.search.sample.Domain
        ``choice`` -> ``tune.choice``, ``uniform`` -> ``tune.uniform``, ``loguniform`` -> ``tune.loguniform``,
        ``randint`` -> ``tune.randint`` (high exclusive, as in the sweep file).
    """
    from ray import tune

    make = {"choice": lambda args: tune.choice(list(args)), "uniform": lambda args: tune.uniform(*args),
            "loguniform": lambda args: tune.loguniform(*args), "randint": lambda args: tune.randint(*args)}
    return {key: make[dist](args) for key, (dist, args) in sweep.space.items()}
