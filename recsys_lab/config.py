"""Run configuration: frozen, keyword-only dataclasses validated on construction.

A :class:`Config` round-trips through plain literals (``to_dict`` / ``from_dict``), which is what papermill
injects into the retrain notebook, and through TOML files. Unknown keys are errors (papermill only warns).

Example TOML::

    [model]
    epochs = 40
    no_components = 64

    [features]
    item = ["genre"]
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

import tomli_w

from recsys_lab.errors import ConfigError

__all__ = ["SECRET_KEYS", "REDACTED",
    "DataConfig", "FeatureConfig", "SplitConfig", "ModelConfig", "AnnConfig", "EvalConfig", "ValidateConfig",
    "GateConfig", "RankConfig", "RunConfig", "AlertsConfig", "ServeConfig", "Config", "RANK_GENERATORS", "RANK_SERVE",
    "ALERT_RULES",
    "ALERT_METRICS", "SEVERITIES",
    "APPRISE_SCHEMES", "parse_duration", "alert_url", "CHECK_NAMES", "SOURCES", "SOURCE_MOVIELENS", "SOURCE_FILES",
    "WEIGHT_TRANSFORMS", "SPLIT_METHODS", "BASELINES", "ALS_GRID", "load_config", "parse_value",
]

SOURCE_MOVIELENS = "movielens-100k"
"""``data.source`` of the MovieLens 100k preset (:mod:`recsys_lab.data.movielens`)."""
SOURCE_FILES = "files"
"""``data.source`` of any interaction log in CSV or Parquet (:mod:`recsys_lab.data.files`)."""
SOURCES = (SOURCE_MOVIELENS, SOURCE_FILES)
"""The values of ``data.source``."""

WEIGHT_TRANSFORMS = ("none", "log1p")
"""The values of ``data.weight_transform`` (each implemented once in :mod:`recsys_lab.data.weights`)."""

CHECK_NAMES = ("null_keys", "duplicates", "weight_range", "future_ts", "old_ts", "unknown_users", "unknown_items",
               "user_table_keys", "item_table_keys", "empty")
"""Names of the data guardrails, in the order they run (:data:`recsys_lab.data.guardrails.CHECKS` derives from it)."""


def _iso_time(text: str) -> bool:
    """Whether ``text`` is an ISO date or datetime (``data.until``)."""
    from datetime import datetime

    try:
        datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return False
    return True


def _check(cond: bool, parameter: str, message: str) -> None:
    if not cond:
        raise ConfigError(message, parameter=parameter)


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """Where the data comes from and what counts as a positive.

    Parameters
    ----------
    source : str
        ``"movielens-100k"`` (default, a preset) or ``"files"``: any interaction log in CSV or Parquet.
    path : str or None
        MovieLens only: local directory or zip with the GroupLens files. Default None:
        ``RECSYS_LAB_DATA_DIR`` if set, else the cache under ``warehouse/`` (downloaded on first use).
    interactions, users, items : str or None
        ``files`` only: the interaction log (required) and optional user and item tables (CSV or Parquet,
        by suffix). Every non-key column of the user and item tables can become a side feature.
    user_col, item_col : str
        Column names of the user id and item id (defaults ``user_id``, ``item_id``); the user and item tables use
        the same id column names.
    time_col : str
        Timestamp column (default ``ts``): datetimes, ISO strings or epoch numbers (see ``time_unit``). ``""``
        means the log has no time column (e.g. aggregated play counts); so does a log that lacks the default
        ``ts`` column. Without timestamps the split is per-user random (``split.method = "auto"``).
    time_unit : str
        Unit of numeric timestamps: ``"s"`` (default) or ``"ms"``.
    weight_col : str or None
        Column with the rating or implicit weight (e.g. play count). None: every interaction weighs 1.
    weight_transform : str
        ``"none"`` (default) or ``"log1p"`` (for counts).
    weight_range : list of float
        Allowed ``[min, max]`` of the raw weight, checked by the guardrails; ``[]`` (default) only requires
        non-negative weights. The MovieLens preset uses ``[1, 5]``.
    positive_threshold : float or None
        Interactions whose (transformed) weight is at least this are positives. Default None: 4.0 for the
        MovieLens preset (ratings >= 4), 0.0 for ``files`` (every logged interaction is a positive).
    title_col : str or None
        Item title column in the items table (default None: the item id is the title).
    warehouse : str
        Warehouse directory (default ``"warehouse"``, relative to the working directory).
    until : str or None
        Data cut-off: only interactions before this ISO date or datetime (UTC when no offset is given) are loaded,
        as if the run happened then (``recsys-lab backfill``). Default None: the whole log. Needs timestamps.
    """

    source: str = SOURCE_MOVIELENS
    path: str | None = None
    interactions: str | None = None
    users: str | None = None
    items: str | None = None
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str = "ts"
    time_unit: str = "s"
    weight_col: str | None = None
    weight_transform: str = "none"
    weight_range: tuple[float, ...] = ()
    positive_threshold: float | None = None
    title_col: str | None = None
    warehouse: str = "warehouse"
    until: str | None = None

    def __post_init__(self) -> None:
        _check_fields(self)
        _check(self.until is None or _iso_time(self.until), "data.until",
               f"expected an ISO date such as 1998-01-01 (or a datetime), got {self.until!r}")
        object.__setattr__(self, "weight_range", tuple(float(v) for v in self.weight_range))
        _check(self.source in SOURCES, "data.source",
               f"unknown source {self.source!r}; expected {' or '.join(map(repr, SOURCES))}")
        if self.source == SOURCE_FILES:
            _check(bool(self.interactions), "data.interactions", "source 'files' needs an interactions file")
        _check(self.time_unit in ("s", "ms"), "data.time_unit", f"expected 's' or 'ms', got {self.time_unit!r}")
        _check(self.weight_transform in WEIGHT_TRANSFORMS, "data.weight_transform",
               f"expected {' or '.join(map(repr, WEIGHT_TRANSFORMS))}, got {self.weight_transform!r}")
        _check(len(self.weight_range) in (0, 2) and (not self.weight_range or
                                                     self.weight_range[0] <= self.weight_range[1]),
               "data.weight_range", f"expected [] or [min, max], got {list(self.weight_range)}")


@dataclass(frozen=True, kw_only=True)
class FeatureConfig:
    """Side features fed to the hybrid model (see :mod:`recsys_lab.features`).

    Parameters
    ----------
    user, item : list of str
        Columns of the user and item tables to turn into tokens: text -> ``col=value``, list -> one token
        per element, number -> ``n_buckets`` quantile buckets, date -> decade. Defaults: no user features
        (demographics hurt warm-user ranking on ML-100k, DESIGN.md); for items, ``genre`` when the item table
        has such a column, else none (a log without an item table works as is). A column named explicitly
        must exist.
    normalize : bool
        Scale each feature row to sum to 1, as ``lightfm.data.Dataset`` does (default True).
    n_buckets : int
        Quantile buckets for numeric columns (default 5).
    windows : list of int
        Time-windowed user features over the last N days before the split's cut-off (e.g. ``[7, 28, 180]``):
        activity level per window and, with ``window_category``, the share of each category. Default ``[]``.
    window_category : str or None
        Item column (e.g. ``"genre"``) whose shares per window describe the user's recent taste.
    """

    user: tuple[str, ...] = ()
    item: tuple[str, ...] | None = None
    normalize: bool = True
    n_buckets: int = 5
    windows: tuple[int, ...] = ()
    window_category: str | None = None

    def __post_init__(self) -> None:
        _check_fields(self)
        object.__setattr__(self, "user", tuple(self.user))
        if self.item is not None:
            object.__setattr__(self, "item", tuple(self.item))
        object.__setattr__(self, "windows", tuple(int(w) for w in self.windows))
        _check(self.n_buckets >= 2, "features.n_buckets", f"must be >= 2, got {self.n_buckets}")
        _check(all(w >= 1 for w in self.windows), "features.windows", f"days must be >= 1, got {list(self.windows)}")

    def item_columns(self, available: list[str]) -> tuple[str, ...]:
        """The item feature columns in force: ``item``, or ``("genre",)`` when unset and the table has it.

        Parameters
        ----------
        available : list of str
            Columns of the items table.

        Returns
        -------
        tuple of str
            ``item`` when set (even if a column is absent), else ``("genre",)`` or ``()``.
        """
        if self.item is not None:
            return self.item
        return ("genre",) if "genre" in available else ()


SPLIT_METHODS = ("auto", "time_global", "time_per_user", "random")
"""Split protocols (see :mod:`recsys_lab.split`)."""


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """How interactions are split into train, validation and test (see :mod:`recsys_lab.split`).

    Parameters
    ----------
    method : str
        ``"time_global"``: one time cut-off for everyone (the last ``test_fraction`` of interactions is test; as in
        production, but on ML-100k only ~100 warm users are left to evaluate). ``"time_per_user"``: each user's
        last ``test_fraction`` of interactions by time is test (906 evaluation users on ML-100k).
        ``"random"``: per-user random holdout, seeded. ``"auto"`` (default): ``time_per_user`` when the log has
        timestamps, ``time_global`` when time-windowed features are configured (they need one cut-off),
        ``random`` without timestamps.
    test_fraction : float
        Share of interactions (of each user's, for the per-user methods) held out as test (default 0.2).
    validation_fraction : float
        Share of the *training* interactions held out, the same way, for early stopping (default 0.2).
    cold_users : float
        Per-user methods only: share of users (seeded sample) held out of training entirely, to measure the
        cold-start path (fold-in, onboarding) on users the model never saw (default 0.1). ``time_global`` has
        natural cold users (test users with no training interaction) and ignores this.
    seed : int
        Seeds the random protocol and the cold-user sample (default 42), apart from ``model.seed`` so that
        runs differing only in the model are evaluated on the same split (paired comparisons).
    """

    method: str = "auto"
    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    cold_users: float = 0.1
    seed: int = 42

    def __post_init__(self) -> None:
        _check_fields(self)
        _check(self.method in SPLIT_METHODS, "split.method", f"expected one of {SPLIT_METHODS}, got {self.method!r}")
        _check(0.0 < self.test_fraction < 1.0, "split.test_fraction", f"must be in (0, 1), got {self.test_fraction}")
        _check(0.0 <= self.validation_fraction < 1.0, "split.validation_fraction",
               f"must be in [0, 1), got {self.validation_fraction}")
        _check(0.0 <= self.cold_users < 0.5, "split.cold_users", f"must be in [0, 0.5), got {self.cold_users}")


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    """LightFM hyper-parameters (https://making.lyst.com/lightfm/docs/lightfm.html).

    Parameters
    ----------
    loss : str
        ``"warp"`` (default), ``"bpr"``, ``"warp-kos"`` or ``"logistic"``.
    no_components : int
        Embedding dimension (default 128; chosen by the sweep in the README: 64 -> 128 and max_sampled
        10 -> 100 took validation-stopped NDCG@10 on ML-100k from 0.166 to 0.185).
    learning_rate : float
        SGD step (default 0.05).
    learning_schedule : str
        ``"adagrad"`` (default) or ``"adadelta"``.
    max_sampled : int
        WARP: negatives sampled per positive before giving up (default 100; LightFM's own default is 10).
    item_alpha, user_alpha : float
        L2 penalties on item and user feature embeddings (default 1e-5).
    epochs : int
        Maximum number of epochs (default 40).
    patience : int
        Early stopping: stop after this many epochs without a better validation NDCG@10 (default 5);
        0 disables early stopping.
    refit : bool
        After early stopping, refit on all training data for the best number of epochs (default True).
    num_threads : int
        OpenMP threads for fit (default 2). Use 1 for bit-identical reruns.
    seed : int
        Seed for LightFM and everything random downstream (default 42).
    validation_users : int
        Early stopping scores a fixed, seeded sample of at most this many validation users after each epoch
        (default 2000; 0: all), so its cost does not grow with the user base.
    sample_weight : str
        ``"none"`` (default): every positive counts once. ``"weight"``: the (transformed) weight of each positive
        is LightFM's ``sample_weight`` (e.g. ``log1p`` play counts).
    """

    loss: str = "warp"
    no_components: int = 128
    learning_rate: float = 0.05
    learning_schedule: str = "adagrad"
    max_sampled: int = 100
    item_alpha: float = 1e-5
    user_alpha: float = 1e-5
    epochs: int = 40
    patience: int = 5
    refit: bool = True
    num_threads: int = 2
    seed: int = 42
    validation_users: int = 2000
    sample_weight: str = "none"

    def __post_init__(self) -> None:
        _check_fields(self)
        _check(self.validation_users >= 0, "model.validation_users", f"must be >= 0, got {self.validation_users}")
        _check(self.sample_weight in ("none", "weight"), "model.sample_weight",
               f"expected 'none' or 'weight', got {self.sample_weight!r}")
        _check(self.loss in ("warp", "bpr", "warp-kos", "logistic"), "model.loss",
               f"unknown loss {self.loss!r}; expected warp, bpr, warp-kos or logistic")
        _check(self.no_components >= 1, "model.no_components", f"must be >= 1, got {self.no_components}")
        _check(self.learning_rate > 0, "model.learning_rate", f"must be > 0, got {self.learning_rate}")
        _check(self.learning_schedule in ("adagrad", "adadelta"), "model.learning_schedule",
               f"expected 'adagrad' or 'adadelta', got {self.learning_schedule!r}")
        _check(self.max_sampled >= 1, "model.max_sampled", f"must be >= 1, got {self.max_sampled}")
        _check(self.item_alpha >= 0 and self.user_alpha >= 0, "model.item_alpha/user_alpha", "must be >= 0")
        _check(self.epochs >= 1, "model.epochs", f"must be >= 1, got {self.epochs}")
        _check(self.patience >= 0, "model.patience", f"must be >= 0, got {self.patience}")
        _check(self.num_threads >= 1, "model.num_threads", f"must be >= 1, got {self.num_threads}")


@dataclass(frozen=True, kw_only=True)
class AnnConfig:
    """Candidate generation: exact search or a MIPS index over the item vectors (see :mod:`recsys_lab.retrieval.ann`).

    Parameters
    ----------
    method : str
        ``"auto"`` (default): exact top-k below ``auto_min_items`` items, the ``hnsw`` index at or above.
        ``"exact"``: always exact (no index). ``"hnsw"``: an exact head of the items most often in users' top-k plus
        an hnswlib inner-product graph, both sized at build time to reach ``target_recall`` on real users' vectors
        (recall@10 >= 0.95 on LightFM of two generator shapes, implicit ALS, MovieLens and a log grown from it,
        ``recsys-lab bench --ann``).
        ``"norm_range"``: exact search over the largest-norm items plus a pynndescent graph over the rest (holds
        only where the largest norms hold the answers: it never reached 0.95 on held-out LightFM vectors).
        ``"inner_product"`` / ``"euclidean_augmented"``: one pynndescent graph over all items (they stall below
        0.95 on large catalogues; kept for comparison). An index method is always built when asked for.
    auto_min_items : int
        Crossover of ``auto`` (default 20,000), measured with ``recsys-lab bench --ann`` on LightFM vectors
        (subsets of 5k-100k items, 2,000 real users, 2 threads): the ``hnsw`` index answered 2.7x (5k items) to
        46x (100k) exact top-k's queries/s, but its build (2-4 s with a graph) paid back only after 60k-130k
        queries at 5k-10k items, after 8.7k at 20k items (0.7 s, head alone). Below it ``auto`` builds nothing.
    n_neighbors : int
        Graph degree of the pynndescent methods (default 30, pynndescent's default).
    epsilon : float
        Search breadth of the pynndescent graph at query time (default 0.1).
    head_size : int
        Items searched exactly. ``hnsw``: 0 (default) lets the build choose by measurement, else a fixed head of
        the items most often in users' top-k. ``norm_range``: those of largest norm (default 0:
        ``max(2048, min(n_items // 50, 4096))``).
    target_recall : float
        ``hnsw``: recall@k the build-time calibration of head and ``ef`` must reach on a seeded sample of real users
        (default 0.96: a margin over ``min_recall``, which it should not be below).
    min_recall : float
        The retrain warns (``ann.AnnRecallWarning``) when the measured ``ann.recall@k`` is below this
        (default 0.95). The gate floor on ``ann.recall@10`` is ``gate.floors``.
    recall_users : int
        Real users whose top-k from the index is compared with exact top-k (default 2,000; seeded sample).
    """

    method: str = "auto"
    auto_min_items: int = 20_000
    n_neighbors: int = 30
    epsilon: float = 0.1
    head_size: int = 0
    target_recall: float = 0.96
    min_recall: float = 0.95
    recall_users: int = 2_000

    def __post_init__(self) -> None:
        _check_fields(self)
        methods = ("auto", "exact", "hnsw", "norm_range", "inner_product", "euclidean_augmented")
        _check(self.method in methods, "ann.method", f"expected one of {methods}, got {self.method!r}")
        _check(self.auto_min_items >= 0, "ann.auto_min_items", f"must be >= 0, got {self.auto_min_items}")
        _check(self.n_neighbors >= 2, "ann.n_neighbors", f"must be >= 2, got {self.n_neighbors}")
        _check(self.epsilon >= 0, "ann.epsilon", f"must be >= 0, got {self.epsilon}")
        _check(self.head_size >= 0, "ann.head_size", f"must be >= 0, got {self.head_size}")
        _check(0 <= self.min_recall <= 1, "ann.min_recall", f"must be in [0, 1], got {self.min_recall}")
        _check(0 < self.target_recall <= 1, "ann.target_recall", f"must be in (0, 1], got {self.target_recall}")
        _check(self.recall_users >= 1, "ann.recall_users", f"must be >= 1, got {self.recall_users}")

    def resolved_method(self, n_items: int) -> str:
        """The method used for a catalogue of ``n_items``: ``auto`` resolves to ``exact`` or ``hnsw``.

        Parameters
        ----------
        n_items : int
            Catalogue size.

        Returns
        -------
        str
            ``method`` unless it is ``auto``; then ``exact`` below ``auto_min_items`` items, else ``hnsw``.
        """
        if self.method != "auto":
            return self.method
        return "exact" if n_items < self.auto_min_items else "hnsw"


BASELINES = ("popularity", "lightfm_cf", "ease", "als")
"""Baselines evaluated on the same split as the model (see :mod:`recsys_lab.models.baselines`)."""

ALS_GRID = tuple((factors, reg, alpha) for factors in (64, 128) for reg in (0.1, 1.0, 10.0, 50.0, 200.0)
                 for alpha in (1.0, 5.0, 20.0))
"""Default implicit ALS (factors, regularization, alpha) settings tried on the validation slice: 30, wider than the
LightFM sweep behind the default model (12 settings). On ML-100k the earlier 9 (64 factors, regularization
0.01-1) chose a weak setting (NDCG@10 0.154); strong regularization is what ALS needed there (see the README)."""


@dataclass(frozen=True, kw_only=True)
class EvalConfig:
    """Evaluation protocol, baselines and uncertainty.

    Parameters
    ----------
    k : int
        Cut-off of the @k metrics (default 10). Metric keys follow it (``ndcg@20`` for ``k = 20``); larger than
        the catalogue is an error.
    baselines : list of str
        Baselines fit and evaluated on the same split (default all: ``popularity``, ``lightfm_cf`` (LightFM
        without side features), ``ease`` (Steck 2019; skipped above ``ease_max_items``), ``als`` (implicit ALS)).
    bootstrap : int
        Bootstrap resamples over users for the 95 % intervals (default 1000; seeded by ``model.seed``).
    max_ci_width : float
        Warn when the 95 % interval of NDCG@k is wider than this (default 0.04): too few users to decide.
    max_users : int
        Evaluate at most this many test users (seeded sample; default 50000; 0: all), bounding the cost on large
        logs. Intervals account for the sample.
    cold_max_users : int
        The cold-start measurement (:meth:`recsys_lab.pipeline.Retrain.evaluate_cold_start`) onboards at most
        this many cold users and folds in at most this many warm users (seeded samples; default 10000; 0: all).
    embedding_max_items : int
        Item neighbours, coherence and stability are computed for a seeded sample of at most this many query
        items (neighbours are searched among all items; default 20000; 0: all); the item probes use at most 5000
        of them.
    als_grid : list of [int, float, float]
        implicit ALS settings ``[factors, regularization, alpha]`` tried on the validation slice (default
        :data:`ALS_GRID`, 30: factors 64 / 128, regularization 0.1 / 1 / 10 / 50 / 200, alpha 1 / 5 / 20; ~6 s on
        ML-100k); one setting skips the search (ALS costs one fit per setting plus the refit: on large logs, e.g.
        ``[[64, 0.1, 10.0]]``).
    ease_max_items : int
        EASE's bound: skipped (with a note) above this catalogue size (default 6000: its six lambdas and refit
        took 44 CPU-s and 0.9 GiB at 6,000 items, 93 CPU-s at 8,000; see ``models.baselines.ease_size``).
    item_category : str
        Item-table column used as the category of embedding coherence, category diversity, the item probe and
        item-side fairness (default ``"genre"``; a list column is multi-label). Skipped, with a note, when the
        item table has no such column.
    user_groups : list of str
        User-table columns whose groups get NDCG@k with intervals and the largest gap (user-side fairness;
        default ``["gender"]``; numeric columns are cut into quantile buckets). Missing columns are skipped.
    probe_user : list of str or None
        User attributes the user-embedding probes predict (default None: every user-table column with at most 50
        distinct values, plus numeric ones in quantile buckets, e.g. ML-100k gender, age, occupation).
    horizon_days : int
        Future-window task: ranking metrics on each user's test positives in the first ``horizon_days`` days
        after the cut-off (default 7; ``time_global`` only, skipped with a note otherwise).
    """

    k: int = 10
    baselines: tuple[str, ...] = BASELINES
    bootstrap: int = 1000
    max_ci_width: float = 0.04
    max_users: int = 50_000
    cold_max_users: int = 10_000
    embedding_max_items: int = 20_000
    als_grid: tuple[tuple[int, float, float], ...] = ALS_GRID
    ease_max_items: int = 6_000
    item_category: str = "genre"
    user_groups: tuple[str, ...] = ("gender",)
    probe_user: tuple[str, ...] | None = None
    horizon_days: int = 7

    def __post_init__(self) -> None:
        _check_fields(self)
        object.__setattr__(self, "baselines", tuple(self.baselines))
        object.__setattr__(self, "user_groups", tuple(self.user_groups))
        if self.probe_user is not None:
            object.__setattr__(self, "probe_user", tuple(self.probe_user))
        _check(self.horizon_days >= 1, "eval.horizon_days", f"must be >= 1, got {self.horizon_days}")
        _check(self.k >= 1, "eval.k", f"must be >= 1, got {self.k}")
        for name in self.baselines:
            _check(name in BASELINES, "eval.baselines", f"unknown baseline {name!r}; expected some of {BASELINES}")
        _check(self.bootstrap >= 100, "eval.bootstrap", f"must be >= 100, got {self.bootstrap}")
        _check(self.max_ci_width > 0, "eval.max_ci_width", f"must be > 0, got {self.max_ci_width}")
        _check(self.max_users >= 0, "eval.max_users", f"must be >= 0, got {self.max_users}")
        try:
            grid = tuple((int(f), float(r), float(a)) for f, r, a in self.als_grid)
        except (TypeError, ValueError):
            grid = ()
        _check(len(grid) > 0 and all(f >= 1 and 0 <= r < math.inf and 0 <= a < math.inf for f, r, a in grid),
               "eval.als_grid",
               f"expected a non-empty list of [factors >= 1, regularization >= 0, alpha >= 0], got {self.als_grid!r}")
        object.__setattr__(self, "als_grid", grid)
        _check(self.embedding_max_items >= 0, "eval.embedding_max_items",
               f"must be >= 0, got {self.embedding_max_items}")
        _check(self.cold_max_users >= 0, "eval.cold_max_users", f"must be >= 0, got {self.cold_max_users}")
        _check(self.ease_max_items >= 0, "eval.ease_max_items", f"must be >= 0, got {self.ease_max_items}")


@dataclass(frozen=True, kw_only=True)
class ValidateConfig:
    """Data guardrails run before a snapshot is used (see :mod:`recsys_lab.data.guardrails`).

    Parameters
    ----------
    warn : list of str
        Checks that only warn instead of failing the run (default none: every check fails). Names:
        ``null_keys, duplicates, weight_range, future_ts, old_ts, unknown_users, unknown_items,
        user_table_keys, item_table_keys, empty``.
    min_year : int
        Timestamps before January 1st of this year are implausibly old (default 1990).
    max_future_days : int
        Timestamps more than this many days after now are in the future (default 1).
    """

    warn: tuple[str, ...] = ()
    min_year: int = 1990
    max_future_days: int = 1

    def __post_init__(self) -> None:
        _check_fields(self)
        object.__setattr__(self, "warn", tuple(self.warn))
        for name in self.warn:
            _check(name in CHECK_NAMES, "validate.warn", f"unknown check {name!r}; expected one of {CHECK_NAMES}")
        _check(self.max_future_days >= 0, "validate.max_future_days", "must be >= 0")


def _default_floors() -> dict[str, float]:
    return {"ndcg@k": 0.05, "ann.recall@k": 0.95}


def _default_regression() -> dict[str, float]:
    return {"ndcg@k": 0.10, "recall@k": 0.10}


@dataclass(frozen=True, kw_only=True)
class GateConfig:
    """Metric gate applied before promotion (see :mod:`recsys_lab.evaluation.gate`).

    Metric names may end in ``@k``: it stands for ``eval.k`` (``ndcg@k`` is ``ndcg@20`` when ``eval.k = 20``).

    Parameters
    ----------
    min : dict of str to float
        Absolute floors, ``metric >= bound`` (default ``{"ndcg@k": 0.05, "ann.recall@k": 0.95}``, the latter
        equal to ``ann.min_recall``).
    max : dict of str to float
        Absolute ceilings, ``metric <= bound``, e.g. drift bounds ``{"drift.psi.item_popularity" = 0.25}``
        (default none).
    max_regression : dict of str to float
        Champion/challenger: production is re-scored on this run's split and compared per user, paired. A check
        fails when production is significantly better (the paired 95 % interval of candidate - production lies
        below 0) **and** the relative drop ``(prod - new) / prod`` exceeds the bound (default
        ``{"ndcg@k": 0.10, "recall@k": 0.10}``).
    not_worse_than : list of str
        Baselines the model must not be significantly worse than on NDCG@k (paired 95 % interval), default
        ``["popularity"]``. ``"best_single"`` names whichever evaluated baseline has the highest NDCG@k in this run
        (EASE on MovieLens): use it when the model should ship only if it holds up against the strongest baseline.
    """

    min: dict[str, float] = field(default_factory=_default_floors)
    max: dict[str, float] = field(default_factory=dict)
    max_regression: dict[str, float] = field(default_factory=_default_regression)
    not_worse_than: tuple[str, ...] = ("popularity",)

    def __post_init__(self) -> None:
        _check_fields(self)
        object.__setattr__(self, "not_worse_than", tuple(self.not_worse_than))
        for name in ("min", "max", "max_regression"):
            for metric, bound in getattr(self, name).items():
                _check(_is_number(bound), f"gate.{name}.{metric}", f"expected a number, got {bound!r}")
                _check(math.isfinite(bound), f"gate.{name}.{metric}", f"expected a finite number, got {bound!r}")
        for metric, bound in self.max_regression.items():
            _check(0 <= bound, f"gate.max_regression.{metric}", f"must be >= 0, got {bound}")
        for name in self.not_worse_than:
            _check(name in BASELINES or name == "best_single", "gate.not_worse_than",
                   f"unknown baseline {name!r}; expected some of {BASELINES} or 'best_single'")


RANK_GENERATORS = ("model", "popularity", "ease", "als")
"""Candidate generators and blend members of the ranking stage (``model`` is the hybrid; the others are baselines
and run only when listed in ``eval.baselines``)."""


RANK_SERVE = ("model", "blend")
"""Values of ``rank.serve``: what a run serves to users with training positives."""


def _default_rank_candidates() -> dict[str, int]:
    return {"model": 100, "ease": 100, "als": 50, "popularity": 20}


@dataclass(frozen=True, kw_only=True)
class RankConfig:
    """The ranking stage (:mod:`recsys_lab.ranking`): candidates, a score blend and a learned ranker, evaluated on the
    same test users as every model (``blend.*`` and ``ranker.*`` keys).

    Parameters
    ----------
    enabled : bool
        Run the stage (default False: on ML-100k the blend is significantly better than EASE, the best single
        model, under both protocols, but by +4.1-4.2 % NDCG@10, short of the +5 % asked for its cost; the ranker
        is never significantly better than the blend; see the README).
    candidates : dict of str to int
        Generator -> N: the candidate set is the union of each generator's top-N (generators: ``model``,
        ``popularity``, ``ease``, ``als``; default ``{model = 100, ease = 100, als = 50, popularity = 20}``).
    blend : list of str
        Generators whose per-user normalised scores are blended (default ``["model", "ease", "als"]``).
    blend_step : float
        Step of the weight grid on the simplex, searched on the validation slice (default 0.1).
    ranker : bool
        Also fit the LightGBM lambdarank ranker over the candidates (default True).
    num_leaves, learning_rate, n_estimators, early_stopping, min_child_samples : int, float, int, int, int
        LightGBM settings (defaults 15, 0.05, 300, 30, 50).
    holdout : float
        Share of validation users held out for the ranker's early stopping (default 0.2).
    refit : bool
        Refit the ranker's chosen number of trees on every validation user (default False: on ML-100k it moved
        NDCG@10 by +0.001 under ``time_per_user`` and -0.006 under ``random``, both inside the noise, for a second
        fit).
    max_users : int
        At most this many validation users (seeded sample) train the blend and the ranker (default 5000; 0: all).
    latency_users : int
        Test users served one at a time to measure the ranker's latency (default 200; 0: not measured).
    serve : str
        What a run serves to its known users (:data:`RANK_SERVE`): ``"model"`` (default: the hybrid's vectors) or
        ``"blend"``: the retrain saves the blend's vectors (``artifacts/blend.npz``, the ones evaluated on the test
        split) and ``recsys-lab recommend`` / the HTTP app serve users with training positives from them (path
        ``blend``; new, folded-in and updated users keep the model's paths). Needs ``enabled`` and a non-empty
        ``blend``; adds the gate floor ``blend.vs.model.ndcg@k.ci_low >= 0`` (the blend not worse than the model,
        :func:`recsys_lab.evaluation.gate.for_serving`). The blend is not saved (``rank.serve_skipped`` = 1 and a
        warning) when its vectors exceed 1 GiB (e.g. EASE over a large catalogue).
    """

    enabled: bool = False
    candidates: dict[str, int] = field(default_factory=_default_rank_candidates)
    blend: tuple[str, ...] = ("model", "ease", "als")
    blend_step: float = 0.1
    ranker: bool = True
    num_leaves: int = 15
    learning_rate: float = 0.05
    n_estimators: int = 300
    early_stopping: int = 30
    min_child_samples: int = 50
    holdout: float = 0.2
    refit: bool = False
    max_users: int = 5000
    latency_users: int = 200
    serve: str = "model"

    def __post_init__(self) -> None:
        _check_fields(self)
        object.__setattr__(self, "blend", tuple(self.blend))
        object.__setattr__(self, "candidates", dict(self.candidates))
        _check(len(self.candidates) > 0, "rank.candidates", "name at least one generator")
        for name, n in self.candidates.items():
            _check(name in RANK_GENERATORS, f"rank.candidates.{name}",
                   f"unknown generator; expected some of {RANK_GENERATORS}")
            _check(_is_int(n) and n >= 1, f"rank.candidates.{name}", f"expected an integer >= 1, got {n!r}")
        for name in self.blend:
            _check(name in RANK_GENERATORS, "rank.blend", f"unknown generator {name!r}; expected some of "
                   f"{RANK_GENERATORS}")
        _check(len(set(self.blend)) == len(self.blend), "rank.blend", "a generator is named twice")
        _check(0 < self.blend_step <= 1, "rank.blend_step", f"must be in (0, 1], got {self.blend_step}")
        _check(len(self.blend) <= 4 or self.blend_step >= 0.2, "rank.blend_step",
               "more than 4 blended generators need a step >= 0.2 (the grid grows as (1/step)^n)")
        for name in ("num_leaves", "n_estimators", "early_stopping", "min_child_samples"):
            _check(getattr(self, name) >= 1, f"rank.{name}", f"must be >= 1, got {getattr(self, name)}")
        _check(0 < self.learning_rate <= 1, "rank.learning_rate", f"must be in (0, 1], got {self.learning_rate}")
        _check(0 <= self.holdout < 1, "rank.holdout", f"must be in [0, 1), got {self.holdout}")
        _check(self.max_users >= 0, "rank.max_users", f"must be >= 0, got {self.max_users}")
        _check(self.latency_users >= 0, "rank.latency_users", f"must be >= 0, got {self.latency_users}")
        _check(self.serve in RANK_SERVE, "rank.serve", f"expected one of {RANK_SERVE}, got {self.serve!r}")
        _check(self.serve != "blend" or (self.enabled and len(self.blend) > 0), "rank.serve",
               "'blend' needs rank.enabled = true and a non-empty rank.blend")


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Run lifecycle settings.

    Parameters
    ----------
    max_minutes : float
        Time budget (SLA) of one retrain in minutes; past it the run is stopped and marked ``timed_out``.
        0 (default) means no limit.
    """

    max_minutes: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self)
        _check(self.max_minutes >= 0, "run.max_minutes", f"must be >= 0, got {self.max_minutes}")


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """The scoring service (``recsys-lab serve``, :mod:`recsys_lab.serving.app`).

    Parameters
    ----------
    host : str
        Address to bind (default ``127.0.0.1``: this machine only; another address must be asked for).
    port : int
        TCP port (default 8000; 0 picks a free one).
    update_seconds : float
        Posted events are folded into an update version every this many seconds (default 60).
    token : str
        When set, ``POST /events`` requires ``Authorization: Bearer <token>`` (``RECSYS_LAB_SERVE_TOKEN``
        overrides it; prefer the variable; a run records ``"<redacted>"`` in its place, :data:`SECRET_KEYS`).
    max_body_bytes : int
        Request bodies above this size are refused with 413 (default 1 MiB).
    poll_seconds : float
        How often ``runs/PRODUCTION`` is checked for a promotion (default 2).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    update_seconds: float = 60.0
    token: str = ""
    max_body_bytes: int = 1 << 20
    poll_seconds: float = 2.0

    def __post_init__(self) -> None:
        _check_fields(self)
        _check(bool(self.host.strip()), "serve.host", "must not be empty")
        _check(0 <= self.port <= 65535, "serve.port", f"must be in [0, 65535], got {self.port}")
        _check(0 < self.update_seconds <= 86400, "serve.update_seconds",
               f"must be > 0 and <= 86400, got {self.update_seconds}")
        _check(self.max_body_bytes >= 1024, "serve.max_body_bytes", f"must be >= 1024, got {self.max_body_bytes}")
        _check(0 < self.poll_seconds <= 3600, "serve.poll_seconds", f"must be > 0 and <= 3600, got {self.poll_seconds}")


APPRISE_SCHEMES = frozenset((
    "46elks acs amqp amqps apprise apprises aprs atalk awswhatsapp azure bale bark barks betterstack bluesky "
    "brevo bsky bulksms bulkvs burstsms chanify clickatell clicksend cliq cm d7sms dapnet deltachat deltachats "
    "dingtalk discord dot eight00com elks emby embys enigma2 enigma2s evolution evolutions exotel feishu "
    "firehydrant flock flowtriq flowtriqs fluxer fluxers form forms freemobile gchat github goalert goalerts "
    "gorush gorushs gotify gotifys groundmail groupme guilded gupshup hassio hassios httpsms humhub humhubs ifttt "
    "ilert incidentio infobip instagram irc ircs jellyfin jellyfins jira join json jsons kakao kakaotalk kaleyra "
    "kavenegar klr kodi kodis kook kudosity kumulos lametric lametrics lark lauther lfg line mailersend mailgun "
    "mailto mailtos mastodon mastodons matrix matrixs misskey misskeys mmost mmosts mobilemessage mobilemsg msg91 "
    "msgbird ncloud nclouds nctalk nctalks nexmo nostr notica noticas notifiarr notifico notificos notifyapp "
    "notifyre ntfy ntfys o365 octopush onebot onebots onesignal opsgenie opsimate opsimates pagerduty pagertree "
    "parsep parseps pbul pinglet pinglets pingram pjet pjets plivo postmark pover prowl psafer psafers push "
    "pushdeer pushdeers pushed pushme pushplus pushward pushy qq reddit resend revolt ringc rocket rockets "
    "rsyslog ryver schan sendgrid sendpulse serwersms ses seven sfr signal signalgrid signals signl4 simplepush "
    "sinch slack smsc smseagle smseagles smsmanager smsmgr smstunnel smtp2go sns sparkpost spike splunk spugpush "
    "spush squadcast stackfield strmlabs synology synologys syslog telesign telnyx tgram threema toot toots trigv "
    "trigvs tweet twilio twist twitter viber victorops voipms vonage webex wechat wecom wecombot whapi whatsapp "
    "workflow workflows wpush wxpusher wxteams x xbmc xbmcs xmatters xml xmls youlmk zalo zcliq zohocliq zoom "
    "zulip "
).split())
"""URL schemes of the Apprise notification services (apprise 2.3; ``tests/ops/test_config_alerts.py`` checks each is
one the installed apprise delivers to). Kept here because the config is validated below the one module that imports
apprise (:mod:`recsys_lab.ops.alerts`)."""

ALERT_RULES = ("failed", "timed_out", "stopped", "gate", "promoted", "drift", "floor", "median", "sla")
"""The alert rules (:mod:`recsys_lab.ops.alerts`): the run failed, timed out or was stopped by a signal; the gate
refused it; it was promoted; a drift measure above its bound; a metric below its floor or significantly below the
median of the last production runs; no run succeeded within the SLA or production is too old (``runs check``)."""

SEVERITIES = ("warning", "critical")
"""Alert severities."""

ALERT_METRICS = ("precision", "recall", "ndcg", "map", "mrr", "auc", "coverage", "novelty", "arp", "aplt", "gini",
                 "ild", "ann.recall")
"""Metrics an alert rule may name (``metrics.json`` keys, each optionally ``@k`` or ``@N``)."""

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, parameter: str = "duration") -> float:
    """Seconds in a duration such as ``26h``, ``3d``, ``90s``, ``1m`` or ``1d12h`` (units s, m, h, d, w).

    Parameters
    ----------
    text : str
        The duration; ``0`` (any unit) means the check is off.
    parameter : str
        The parameter it came from, named by the error.

    Returns
    -------
    float
        Seconds (>= 0).

    Raises
    ------
    ConfigError
        Not a sequence of ``NUMBER UNIT`` parts.
    """
    import re

    s = str(text).strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhdw])", s)
    if not s or re.sub(r"(\d+(?:\.\d+)?)\s*([smhdw])", "", s).strip() or not parts:
        raise ConfigError(f"expected a duration such as 26h, 3d, 90m or 1d12h (units s, m, h, d, w), got {text!r}",
                          parameter=parameter)
    return float(sum(float(n) * _DURATION_UNITS[u] for n, u in parts))


SECRET_KEYS = ("serve.token",)
"""Configuration keys never written into a run folder (``run.json``, the executed notebook)."""
REDACTED = "<redacted>"
"""What a run records in place of a secret that was set."""


def alert_url(entry: str) -> str | None:
    """The Apprise URL an ``alerts.urls`` entry stands for: itself, or for ``$NAME`` / ``${NAME}`` the environment
    variable ``NAME``.

    Parameters
    ----------
    entry : str
        An ``alerts.urls`` entry.

    Returns
    -------
    str or None
        The URL; None when ``entry`` names an environment variable that is not set.

    Raises
    ------
    ConfigError
        ``entry`` starts with ``$`` but is not ``$NAME`` or ``${NAME}``.
    """
    import os
    import re

    if not entry.startswith("$"):
        return entry
    m = re.fullmatch(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))", entry)
    _check(m is not None, "alerts.urls", f"expected $NAME or ${{NAME}} (an environment variable), got {entry!r}")
    value = os.environ.get(m.group(1) or m.group(2))  # type: ignore[union-attr]
    return value.strip() if value and value.strip() else None


def _alert_metric_ok(key: str) -> bool:
    """``metric``, ``metric@k`` or ``metric@N`` with ``metric`` one of :data:`ALERT_METRICS`."""
    base, at, k = key.partition("@")
    return base in ALERT_METRICS and (not at or k == "k" or (k.isdigit() and int(k) >= 1))


def _default_alert_drift() -> dict[str, float]:
    return {"drift.psi.item_popularity": 0.25, "drift.psi.user_activity": 0.25}


def _default_severity() -> dict[str, str]:
    return {"failed": "critical", "timed_out": "critical", "stopped": "critical", "sla": "critical",
            "gate": "warning", "promoted": "warning", "drift": "warning", "floor": "warning", "median": "warning"}


@dataclass(frozen=True, kw_only=True)
class AlertsConfig:
    """Who is told, and when, that a retrain needs a look (see :mod:`recsys_lab.ops.alerts` and ``runs check``).

    Metric names may end in ``@k`` (``eval.k``). Alerts are sent after every ``recsys-lab retrain`` and by
    ``recsys-lab runs check``, and recorded in ``alerts.json``; a failed delivery never fails the run.

    Parameters
    ----------
    urls : list of str
        Apprise URLs (``json://host/path``, ``slack://...``, ``mailto://...``; https://github.com/caronc/apprise):
        every alert goes to each. Default none. ``$NAME`` stands for the URL held by environment variable ``NAME``
        (:func:`alert_url`), which keeps tokens out of ``config.toml`` and of every ``run.json``.
    command : str or None
        Shell command run for every alert (default None), the alert as JSON on its stdin and in ``RECSYS_ALERT_*``
        environment variables (``RULE``, ``SEVERITY``, ``RUN_ID``, ``REASON``, ``REPORT``, ``MESSAGE``).
    report_url : str
        Prefix of the report's link in a message: ``PREFIX/<run_id>/report.html`` (default ``""``: the report's
        path on this machine).
    rules : list of str
        Rules in force (default every one but ``promoted``): ``failed``, ``timed_out``, ``stopped``, ``gate``,
        ``promoted``, ``drift``, ``floor``, ``median``, ``sla``.
    severity : dict of str to str
        ``warning`` or ``critical`` per rule (default critical for ``failed``, ``timed_out``, ``stopped`` and
        ``sla``, warning for the rest); a rule left out keeps its default.
    drift : dict of str to float
        ``drift.*`` measures and the bound above which they alert (default PSI 0.25, "major", for
        ``drift.psi.item_popularity`` and ``drift.psi.user_activity``).
    min : dict of str to float
        Floors: a metric below its floor alerts (default none; the gate's floors refuse the run instead).
    median : list of str
        Metrics that alert when significantly below the median of the last ``median_runs`` production runs: the
        run's 95 % interval lies below it (``ci_high < median``; the value itself for a metric without interval).
        Default ``["ndcg@k"]``.
    median_runs : int
        How many of the latest promoted runs make the median (default 5).
    sla : str
        ``runs check``: a run must have succeeded within this long (default ``26h``; ``0h``: not checked).
    max_production_age : str
        ``runs check``: production's run must be at most this old (default ``3d``; ``0d``: not checked).
    timeout : float
        Seconds the ``command`` may take (default 30).
    """

    urls: tuple[str, ...] = ()
    command: str | None = None
    report_url: str = ""
    rules: tuple[str, ...] = tuple(r for r in ALERT_RULES if r != "promoted")
    severity: dict[str, str] = field(default_factory=_default_severity)
    drift: dict[str, float] = field(default_factory=_default_alert_drift)
    min: dict[str, float] = field(default_factory=dict)
    median: tuple[str, ...] = ("ndcg@k",)
    median_runs: int = 5
    sla: str = "26h"
    max_production_age: str = "3d"
    timeout: float = 30.0

    def __post_init__(self) -> None:
        import re

        _check_fields(self)
        for name in ("urls", "rules", "median"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "severity", {**_default_severity(), **self.severity})
        for entry in self.urls:
            url = alert_url(entry)
            if url is None:  # $NAME not set here: checked when the alert is sent
                continue
            m = re.match(r"([A-Za-z0-9+.-]+)://\S", url)
            shown = url if len(url) <= 16 else url[:16] + "..."  # never echo a whole URL: it may hold a token
            _check(m is not None, "alerts.urls", f"expected an Apprise URL SCHEME://..., got {shown!r}")
            scheme = m.group(1).lower()  # type: ignore[union-attr]
            _check(scheme in APPRISE_SCHEMES, "alerts.urls",
                   f"unknown Apprise URL scheme {scheme!r} in {scheme}://... (json, slack, mailto, discord, "
                   "ntfy... see https://github.com/caronc/apprise/wiki)")
        for rule in self.rules:
            _check(rule in ALERT_RULES, "alerts.rules", f"unknown rule {rule!r}; expected some of {ALERT_RULES}")
        for rule, level in self.severity.items():
            _check(rule in ALERT_RULES, f"alerts.severity.{rule}", f"unknown rule; expected one of {ALERT_RULES}")
            _check(level in SEVERITIES, f"alerts.severity.{rule}", f"expected 'warning' or 'critical', got {level!r}")
        for key, bound in self.drift.items():
            _check(key.startswith("drift.") and len(key) > len("drift."), f"alerts.drift.{key}",
                   "unknown drift measure; expected a drift.* metric such as drift.psi.item_popularity")
            _check(_is_number(bound) and math.isfinite(bound), f"alerts.drift.{key}",
                   f"expected a finite number, got {bound!r}")
        for key, bound in self.min.items():
            _check(_alert_metric_ok(key), f"alerts.min.{key}",
                   f"unknown metric; expected one of {ALERT_METRICS}, optionally @k or @N")
            _check(_is_number(bound) and math.isfinite(bound), f"alerts.min.{key}",
                   f"expected a finite number, got {bound!r}")
        for key in self.median:
            _check(_alert_metric_ok(key), "alerts.median",
                   f"unknown metric {key!r}; expected one of {ALERT_METRICS}, optionally @k or @N")
        _check(self.median_runs >= 1, "alerts.median_runs", f"must be >= 1, got {self.median_runs}")
        parse_duration(self.sla, "alerts.sla")
        parse_duration(self.max_production_age, "alerts.max_production_age")
        _check(self.timeout > 0, "alerts.timeout", f"must be > 0, got {self.timeout}")

    def level(self, rule: str) -> str:
        """The severity of a rule.

        Parameters
        ----------
        rule : str
            One of :data:`ALERT_RULES`.

        Returns
        -------
        str
            ``warning`` or ``critical``.
        """
        return self.severity.get(rule, "warning")


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration of a retrain; every field has a documented default."""

    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    ann: AnnConfig = field(default_factory=AnnConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    rank: RankConfig = field(default_factory=RankConfig)
    run: RunConfig = field(default_factory=RunConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)

    def __post_init__(self) -> None:
        for name, sec_cls in _section_types().items():
            value = getattr(self, name)
            _check(isinstance(value, sec_cls), name, f"expected a {sec_cls.__name__}, got {value!r}")

    def to_dict(self, *, redact: bool = False) -> dict[str, dict[str, Any]]:
        """Nested dict of plain literals (lists, not tuples), as papermill and TOML want.

        Parameters
        ----------
        redact : bool
            Replace the secrets (:data:`SECRET_KEYS`, when set) by ``"<redacted>"``: what a run records in its
            ``run.json`` and injects into its notebook (default False).

        Returns
        -------
        dict of str to dict
            ``{section: {key: value}}`` for every section and field, None values included.
        """

        def plain(v: Any) -> Any:
            return [plain(x) for x in v] if isinstance(v, tuple) else dict(v) if isinstance(v, dict) else v

        out = {s.name: {f.name: plain(getattr(getattr(self, s.name), f.name))
                        for f in dataclasses.fields(getattr(self, s.name))}
               for s in dataclasses.fields(self)}
        for key in SECRET_KEYS if redact else ():
            section, name = key.split(".")
            if out[section][name]:
                out[section][name] = REDACTED
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Config":
        """Build from a nested dict; missing keys take defaults.

        Parameters
        ----------
        d : dict or None
            ``{section: {key: value}}`` (as read from TOML); None or empty gives the defaults.

        Returns
        -------
        Config

        Raises
        ------
        ConfigError
            Unknown section or key, or a value of the wrong type or out of range.
        """
        d = dict(d or {})
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, values in d.items():
            if name not in sections:
                raise ConfigError(f"unknown section; expected one of {sorted(sections)}", parameter=name)
            if not isinstance(values, dict):
                raise ConfigError(f"expected a table of settings, got {type(values).__name__}", parameter=name)
            sec_cls = _section_types()[name]
            known = {f.name for f in dataclasses.fields(sec_cls)}
            for key in values:
                if key not in known:
                    raise ConfigError(f"unknown parameter; expected one of {sorted(known)}",
                                      parameter=f"{name}.{key}")
            kwargs[name] = sec_cls(**values)  # each section checks its types and ranges in __post_init__
        return cls(**kwargs)

    def replace(self, overrides: dict[str, Any]) -> "Config":
        """A copy with dotted overrides applied, e.g. ``{"model.epochs": 5}``.

        Parameters
        ----------
        overrides : dict of str to Any
            ``SECTION.KEY`` to value; ``SECTION.TABLE.ENTRY`` (e.g. ``gate.min.ndcg@10``) sets one entry of a table.

        Returns
        -------
        Config
            New config, validated as by :meth:`from_dict`; ``self`` is unchanged.

        Raises
        ------
        ConfigError
            Unknown parameter or bad value.
        """
        d = self.to_dict()
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section not in d or not key:
                raise ConfigError("expected SECTION.KEY with SECTION one of " + ", ".join(d), parameter=dotted)
            key, _, sub = key.partition(".")
            if sub:  # a table entry, e.g. gate.min.ndcg@10
                if not isinstance(d[section].get(key), dict):
                    raise ConfigError(f"{section}.{key} is not a table", parameter=dotted)
                d[section][key] = {**d[section][key], sub: value}
            else:
                d[section][key] = value
        return Config.from_dict(d)

    def to_toml(self) -> str:
        """TOML text of the full configuration (None values are left out).

        Returns
        -------
        str
            One TOML table per section.
        """
        return tomli_w.dumps({s: {k: v for k, v in kv.items() if v is not None}
                              for s, kv in self.to_dict().items()})


def _section_types() -> dict[str, type]:
    return {"data": DataConfig, "features": FeatureConfig, "split": SplitConfig, "model": ModelConfig,
            "ann": AnnConfig, "eval": EvalConfig, "validate": ValidateConfig, "gate": GateConfig,
            "rank": RankConfig, "run": RunConfig, "alerts": AlertsConfig, "serve": ServeConfig}


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_fields(section: Any) -> None:
    """Check the type of every field of a config section against its annotation (before any normalisation), so a
    section built directly is held to the same rules as one read by :meth:`Config.from_dict`."""
    name = {c: n for n, c in _section_types().items()}[type(section)]
    hints = _hints(type(section))
    for f in dataclasses.fields(section):
        _check_type(f"{name}.{f.name}", getattr(section, f.name), hints[f.name])


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _check_type(parameter: str, value: Any, hint: Any) -> None:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        expected = "a table of metric = number"
    elif origin is tuple:
        item = typing.get_args(hint)[0]
        if typing.get_origin(item) is tuple:  # a list of rows, checked by the section's __post_init__
            ok, expected = isinstance(value, (list, tuple)), "a list of lists"
        elif item is int:
            ok = isinstance(value, (list, tuple)) and all(_is_int(v) for v in value)
            expected = "a list of integers"
        elif item is float:  # bounds may be infinite, never NaN
            ok = isinstance(value, (list, tuple)) and all(_is_number(v) and v == v for v in value)
            expected = "a list of numbers"
        else:
            ok = isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)
            expected = "a list of strings"
    elif hint is bool:
        ok, expected = isinstance(value, bool), "true or false"
    elif hint is int:
        ok, expected = _is_int(value), "an integer"
    elif hint is float:
        ok, expected = _is_number(value), "a number"
        if ok and not math.isfinite(value):
            ok, expected = False, "a finite number"
    else:
        ok, expected = isinstance(value, str), "a string"
    if not ok:
        raise ConfigError(f"expected {expected}, got {value!r}", parameter=parameter)


def parse_value(text: str) -> Any:
    """Parse a command-line value as a TOML literal (``5``, ``0.1``, ``true``, ``["genre"]``), else a string.

    Parameters
    ----------
    text : str
        The value as typed on the command line.

    Returns
    -------
    Any
        int, float, bool, list, dict or str (``text`` itself when it is not a TOML literal).
    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read a TOML config file (optional) and apply dotted overrides.

    Parameters
    ----------
    path : str or Path, optional
        TOML file with sections ``data, features, split, model, ann, eval, validate, gate, run, alerts, serve``.
    overrides : dict, optional
        ``{"model.epochs": 5, ...}`` applied after the file.

    Returns
    -------
    Config
        Defaults, overlaid by the file, then by ``overrides``.

    Raises
    ------
    ConfigError
        The file is missing, a directory, unreadable, not UTF-8 or not valid TOML (the message names the file),
        or a parameter is unknown or invalid.
    """
    cfg = Config()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"config file {p} is a directory, expected a TOML file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {p} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                              "save it as UTF-8") from exc
        except OSError as exc:
            raise ConfigError(f"config file {p} cannot be read ({exc.strerror or exc})") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {p} is not valid TOML: {exc}") from exc
        cfg = Config.from_dict(data)
    if overrides:
        cfg = cfg.replace(overrides)
    return cfg
