"""The run serving answers from: a saved run (:mod:`recsys_lab.store.artifacts`) with its data snapshot, cached per
process, and what every serving path shares (id type of a request, titles, popularity, the run's fold-in, a user's
recent positives).

Vectors come from the run folder (``artifacts/id_maps.npz``, ``artifacts/embeddings.npz``, ``artifacts/split.npz``);
a user's history and item titles from the run's warehouse snapshot (opened read-only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.config import Config, DataConfig
from recsys_lab.data import weights
from recsys_lab.data.warehouse import Snapshot, open_snapshot
from recsys_lab.errors import ConfigError, RecsysLabWarning, RunError
from recsys_lab.models import foldin
from recsys_lab.runs.registry import resolve
from recsys_lab.store.artifacts import SavedBlend, SavedRun, load_run
from recsys_lab.store.folder import RunFolder, read_json

__all__ = ["ServedRun", "served_run", "ColdStartWarning", "ShortListWarning", "UPDATE_WINDOW", "run_metrics", "utc",
           "check_k"]

UPDATE_WINDOW = 10
"""Fold-in of an updated user uses their last this many positives (training and new). On ML-100k warm users,
the mean of the last 10 training positives scored NDCG@10 0.189 against the retrain's 0.178 (97 users) and 0.200
against 0.231 (133 users, 40 % test split); all positives 0.171 and 0.214: recency makes an update visible."""


class ColdStartWarning(RecsysLabWarning):
    """A request was served by the cold-start path with nothing to fold in, or named unknown items."""


class ShortListWarning(RecsysLabWarning):
    """A list is shorter than the ``k`` asked for: fewer items are left to recommend (``k`` is clamped)."""


def check_k(k: int, parameter: str = "k") -> int:
    """A list length asked of serving: a positive integer (the command line's ``-k`` is checked here).

    A ``k`` larger than what is left to recommend is not an error: the list is clamped to the items left, with a
    :class:`ShortListWarning`.

    Parameters
    ----------
    k : int
        The list length.
    parameter : str
        Its name in the message.

    Returns
    -------
    int
        ``k`` as a Python int.

    Raises
    ------
    ConfigError
        ``"k: must be an integer >= 1, got 0"`` (also for a bool, a float or text).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"must be an integer >= 1, got {k!r}", parameter=parameter)
    return int(k)


class ServedRun:
    """A saved run as serving uses it (build it with :func:`served_run`).

    Parameters
    ----------
    saved : SavedRun
        The run read back from its folder.

    Attributes
    ----------
    saved : SavedRun
    run_id : str
    path : Path
        The run folder.
    users, items : IdMap
    user_ids, item_ids : ndarray
        External ids in index order.
    user_vecs, item_vecs : ndarray, float32
        Folded vectors.
    seen, positives : csr_matrix of shape (n_users, n_items) or None
        Training interactions and positives from ``artifacts/split.npz``; None for runs saved before it.
    config : dict
        The configuration recorded in the manifest.
    snapshot_path : Path
        The run's warehouse snapshot.
    cutoff : str or None
        The split's training cut-off.

    Raises
    ------
    RunError
        A damaged ``split.npz`` or manifest (named), or a manifest without a data snapshot.
    """

    def __init__(self, saved: SavedRun) -> None:
        self.saved, self.run_id, self.path = saved, saved.run_id, saved.path
        self.users, self.items = saved.users, saved.items
        self.user_ids, self.item_ids = saved.user_ids, saved.item_ids
        self.user_vecs, self.item_vecs = saved.user_vecs, saved.item_vecs
        split = saved.split()
        self.seen: sp.csr_matrix | None = split.seen if split is not None else None
        self.positives: sp.csr_matrix | None = split.positives if split is not None else None
        self.config: dict = saved.config
        path = saved.snapshot_path
        if path is None:
            raise RunError(f"{saved.folder.run_json}: the manifest names no data snapshot or warehouse")
        self.snapshot_path: Path = path
        self.cutoff: str | None = saved.cutoff
        self._popularity: np.ndarray | None = None
        self._foldin: foldin.FoldIn | None = None
        self._snapshot: Snapshot | None = None
        self._rows: pl.DataFrame | None = None  # interactions sorted by user (preload)
        self._row_users: np.ndarray | None = None  # their user ids, for a binary search
        self._titles: np.ndarray | None = None  # title by internal item index (preload)

    def preload(self) -> ServedRun:
        """Keep the snapshot's interactions (sorted by user) and item titles in memory, for a long-lived process.

        :meth:`user_rows` and :meth:`titles` then answer from memory (a binary search and a join) instead of
        a DuckDB query each: what ``recsys-lab serve`` needs for its latency (about 40 bytes per interaction).

        Returns
        -------
        ServedRun
            ``self``.

        Raises
        ------
        RunError
            The snapshot is gone from the warehouse.
        """
        if self._rows is None:
            rows = utc(self.sql("SELECT user_id, item_id, weight, ts FROM interactions", [])).sort("user_id", "ts")
            items = self.sql("SELECT item_id, title FROM items", [])
            titles = np.full(len(self.item_ids), None, dtype=object)
            idx, ok = self.items.lookup(items["item_id"].to_numpy())
            titles[idx[ok]] = np.asarray(items["title"].to_list(), dtype=object)[ok]
            self._row_users = rows["user_id"].to_numpy()
            self._titles, self._rows = titles, rows
        return self

    @property
    def data_config(self) -> DataConfig:
        """The run's ``[data]`` configuration."""
        return Config.from_dict(self.config).data if self.config else Config().data

    # -- the weight transform and positive rule (owned by recsys_lab.data.weights) -------------------------
    def weight(self) -> pl.Expr:
        """The run's weight transform over column ``weight``, as a Polars expression.

        Returns
        -------
        pl.Expr
            :func:`recsys_lab.data.weights.transform` of the run's ``data.weight_transform``.
        """
        return weights.transform(self.data_config.weight_transform)

    def weight_sql(self) -> str:
        """The run's weight transform as DuckDB SQL over column ``weight``.

        Returns
        -------
        str
            :func:`recsys_lab.data.weights.transform_sql` of the run's ``data.weight_transform``.
        """
        return weights.transform_sql(self.data_config.weight_transform)

    def positive(self) -> pl.Expr:
        """The run's positive rule over column ``weight`` (:func:`recsys_lab.data.weights.is_positive`).

        Returns
        -------
        pl.Expr
            True where the transformed weight reaches :attr:`threshold`.
        """
        return weights.is_positive(self.threshold, transform_name=self.data_config.weight_transform)

    def positive_sql(self) -> str:
        """The run's positive rule as DuckDB SQL with the threshold as a bound parameter ``?``.

        Returns
        -------
        str
            :func:`recsys_lab.data.weights.is_positive_sql` with ``?`` for the threshold.
        """
        return weights.is_positive_sql("?", transform_name=self.data_config.weight_transform)

    @property
    def threshold(self) -> float:
        """The positive threshold in force for this run (:func:`recsys_lab.data.weights.positive_threshold`)."""
        return weights.positive_threshold(self.data_config)

    # -- the snapshot ---------------------------------------------------------------------------------------
    def sql(self, query: str, params: list) -> pl.DataFrame:
        """A read-only query on the run's data snapshot.

        Parameters
        ----------
        query : str
            DuckDB SQL over ``interactions``, ``users``, ``items``.
        params : list
            Bound parameters.

        Returns
        -------
        pl.DataFrame

        Raises
        ------
        RunError
            The snapshot is gone from the warehouse.
        """
        if not self.snapshot_path.is_file():
            raise RunError(f"{self.snapshot_path}: the run's data snapshot is gone from the warehouse")
        if self._snapshot is None:  # opening checks the content hash (~30 ms): once per run
            self._snapshot = open_snapshot(self.snapshot_path.stem, self.snapshot_path.parent.parent)
        return self._snapshot.sql(query, params)

    def titles(self, ids: np.ndarray) -> pl.DataFrame:
        """``item_id, title`` of the given external item ids.

        Parameters
        ----------
        ids : ndarray
            External item ids.

        Returns
        -------
        pl.DataFrame
        """
        if self._titles is not None:
            idx, ok = self.items.lookup(ids)
            return pl.DataFrame({"item_id": ids[ok], "title": self._titles[idx[ok]]},
                                schema_overrides={"title": pl.Utf8})
        return self.sql("SELECT item_id, title FROM items WHERE item_id IN (SELECT unnest(?))", [ids.tolist()])

    def user_key(self, user_id: int | str) -> int | str:
        """The user id in the run's id type (integer or text).

        Parameters
        ----------
        user_id : int or str

        Returns
        -------
        int or str

        Raises
        ------
        RunError
            The run's user ids are integers and ``user_id`` is not one (text that is not an integer, a fractional
            number, or an integer outside the 64-bit range of the run's ids); or ``user_id`` is not a scalar.
        """
        if isinstance(user_id, np.generic):
            user_id = user_id.item()
        if not isinstance(user_id, (int, str, float)) or isinstance(user_id, bool):
            raise RunError(f"run {self.run_id}: a user id is an integer or text, got {type(user_id).__name__} "
                           f"{user_id!r}")
        if self.user_ids.dtype.kind not in "iu":
            return str(user_id)
        try:
            value = int(user_id.strip()) if isinstance(user_id, str) else int(user_id)
            if isinstance(user_id, float) and value != user_id:
                raise ValueError("fractional")
        except (TypeError, ValueError, OverflowError):
            raise RunError(f"run {self.run_id}: user ids are integers, got {user_id!r}") from None
        if not -2**63 <= value < 2**63:
            raise RunError(f"run {self.run_id}: user ids are integers, got {user_id!r} (outside the 64-bit range "
                           "of the run's ids)")
        return value

    def popularity(self) -> np.ndarray:
        """Training positives per item (n_items,), float32, from the run's split (or snapshot); cached.

        Returns
        -------
        ndarray of shape (n_items,), float32
        """
        if self._popularity is None and self.positives is not None:
            self._popularity = np.asarray(self.positives.sum(axis=0), dtype=np.float32).ravel()
        if self._popularity is None:
            df = self.sql(f"SELECT item_id, count(DISTINCT user_id) AS n FROM interactions WHERE ts < ?::TIMESTAMPTZ "
                          f"AND {self.positive_sql()} GROUP BY item_id", [self.cutoff, self.threshold])
            pop = np.zeros(len(self.item_ids), np.float32)
            idx, ok = self.items.lookup(df["item_id"].to_numpy())
            pop[idx[ok]] = df["n"].to_numpy()[ok]
            self._popularity = pop
        return self._popularity

    def blend(self) -> SavedBlend | None:
        """The ranking stage's blend the run serves (``artifacts/blend.npz``, ``rank.serve = "blend"``): read on
        first use (runs without it cost one ``stat``), then kept.

        Returns
        -------
        SavedBlend or None
            None when the run saved no blend.

        Raises
        ------
        RunError
            The file is truncated or damaged, or does not match the run's ids (named).
        """
        return self.saved.blend()

    def foldin(self) -> foldin.FoldIn:
        """The run's fold-in: default method, the average user with training positives as prior; cached.

        Returns
        -------
        foldin.FoldIn
        """
        if self._foldin is None:
            if self.positives is not None:  # the run's own training positives
                idx = np.flatnonzero(self.positives.getnnz(axis=1) > 0)
                ok = np.ones(len(idx), bool)
            else:  # a run saved before artifacts/split.npz: trained users are those with positives before the cut-off
                trained = self.sql(f"SELECT DISTINCT user_id FROM interactions WHERE ts < ?::TIMESTAMPTZ AND "
                                   f"{self.positive_sql()}", [self.cutoff, self.threshold])
                idx, ok = self.users.lookup(trained["user_id"].to_numpy())
            prior = foldin.average_user(self.user_vecs, idx[ok]) if ok.any() else None
            self._foldin = foldin.FoldIn(self.item_vecs, prior=prior)
        return self._foldin

    def recent_positives(self, rows: pl.DataFrame, window: int) -> pl.DataFrame:
        """``user_id, item_idx`` of each user's last ``window`` distinct positive items with a known id, by time.

        Parameters
        ----------
        rows : pl.DataFrame
            ``user_id, item_id, weight`` (raw, as logged), ``ts``.
        window : int
            Most recent positives kept per user.

        Returns
        -------
        pl.DataFrame
            ``user_id, item_idx`` (internal item index), oldest first per user.
        """
        idx, ok = self.items.lookup(rows["item_id"].to_numpy())
        return (rows.with_columns(pl.Series("item_idx", idx), pl.Series("_ok", ok))
                .filter(pl.col("_ok") & self.positive())
                .sort("ts").unique(["user_id", "item_idx"], keep="last", maintain_order=True)
                .group_by("user_id", maintain_order=True).tail(window)
                .select("user_id", "item_idx"))

    def user_rows(self, user_id: int | str) -> pl.DataFrame:
        """All the user's interactions in the run's snapshot (any time).

        Parameters
        ----------
        user_id : int or str
            In the run's id type (:meth:`user_key`).

        Returns
        -------
        pl.DataFrame
            ``user_id, item_id, weight, ts`` (``ts`` UTC).
        """
        if self._rows is not None and self._row_users is not None:
            col = self._row_users
            if (col.dtype.kind in "iu") != isinstance(user_id, (int, np.integer)):
                return self._rows.clear()
            lo, hi = (int(np.searchsorted(col, user_id, side=side)) for side in ("left", "right"))
            return self._rows.slice(lo, hi - lo)
        return utc(self.sql("SELECT user_id, item_id, weight, ts FROM interactions WHERE user_id = ?", [user_id]))


def utc(df: pl.DataFrame) -> pl.DataFrame:
    """``ts`` as Datetime(us, "UTC") whatever the source's zone name (DuckDB says Etc/UTC), so frames concat.

    Parameters
    ----------
    df : pl.DataFrame
        Has a time-zone-aware ``ts``.

    Returns
    -------
    pl.DataFrame
    """
    return df.with_columns(pl.col("ts").dt.convert_time_zone("UTC").dt.cast_time_unit("us"))


_CACHE: dict[Path, ServedRun] = {}


def served_run(runs_dir: str | Path, run: str) -> ServedRun:
    """The run ``run`` of ``runs_dir`` loaded for serving (cached per process and folder).

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        Run reference (``latest``, ``production``, a run id or a unique prefix).

    Returns
    -------
    ServedRun

    Raises
    ------
    RunError
        Unknown run, or a missing, truncated or damaged artifact or manifest (the message names the file).
    """
    run_dir = resolve(runs_dir, run)
    if run_dir not in _CACHE:
        _CACHE[run_dir] = ServedRun(load_run(run_dir))
    return _CACHE[run_dir]


def run_metrics(runs_dir: str | Path, *, run: str = "production") -> dict[str, float]:
    """A run's ``metrics.json``.

    Parameters
    ----------
    runs_dir : str or Path
        The runs directory.
    run : str
        Run id, unique prefix, ``latest`` or ``production`` (default).

    Returns
    -------
    dict of str to float
        Metric name to value (see the run folder's ``metrics.json``).

    Raises
    ------
    RunError
        Unknown run, or the file is missing or not JSON.
    """
    return read_json(RunFolder(resolve(runs_dir, run)).metrics, "metrics file")
