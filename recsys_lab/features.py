"""Id maps and sparse feature matrices, built with Polars (no Python loops over rows).

Feature tokens are namespaced (``user=42``, ``genre=Comedy``, ``occupation=writer``): in LightFM, ids and
feature names share one index space (lyst/lightfm#478), so an un-prefixed ``"1"`` could mean a user id, an
item id or an age. Every row gets its identity token, so the hybrid model keeps a per-user and per-item
embedding and side features add to it (LightFM paper, Kula 2015, arXiv:1507.08439, section 3).

Any column of the user and item tables can be a feature family: text -> ``col=value``; list -> one token per
element; number -> quantile bucket ``col=(lo, hi]``; date -> decade ``col=1990s``.

Time-windowed user features (:meth:`Dataset.user_features_at`) describe each user's activity and taste over
the last N days before a cut-off, from interactions strictly before it (no leakage from the test period):
``activity_28d=4-7`` (log2 bucket of the interaction count) and ``taste_28d.genre=Comedy`` weighted by the
share of the user's window interactions in that category.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab.config import FeatureConfig
from recsys_lab.errors import ConfigError, DataError

__all__ = ["IdMap", "align", "FeatureMatrix", "Dataset", "build_dataset", "identity_features", "column_tokens"]


class IdMap:
    """Bijection between external ids and contiguous internal indices ``0..n-1`` (sorted external order).

    The one id lookup: :meth:`to_index` (all ids known), :meth:`lookup` (unknown ids in a mask), :func:`align`
    (ids two maps share: ``align(a.ids, b.ids)``). Integer maps hold ``int64``, text maps ``str``; files: :mod:`recsys_lab.store.artifacts`.

    Parameters
    ----------
    ids : array-like, shape (n,)
        External ids, integers or strings; duplicates are dropped.
    name : str
        What the ids are (``"user_id"``), used in error messages.
    """

    def __init__(self, ids: np.ndarray | list, name: str) -> None:
        self.ids = np.unique(_normalised(np.asarray(ids)))
        self.name = name

    @classmethod
    def from_sorted(cls, ids: np.ndarray, name: str) -> "IdMap":
        """The map whose internal order is exactly ``ids`` (as saved: rows of saved vectors stay aligned).

        Parameters
        ----------
        ids : ndarray of shape (n,)
            External ids, strictly increasing (as :attr:`ids` of a map).
        name : str
            What the ids are, for messages.

        Returns
        -------
        IdMap

        Raises
        ------
        DataError
            ``ids`` is not 1-D, not integers or text, or not strictly increasing.
        """
        arr = np.asarray(ids)
        if arr.ndim != 1 or arr.dtype.kind not in "iuU":
            raise DataError(f"{name}: expected a 1-D array of integer or text ids, got {arr.dtype} {arr.shape}")
        out = cls([], name)
        out.ids = _normalised(arr)
        if len(arr) > 1 and not np.all(out.ids[1:] > out.ids[:-1]):
            raise DataError(f"{name}: ids are not unique and sorted")
        return out

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"IdMap({self.name}, n={len(self)})"

    def lookup(self, ids: np.ndarray | list | int | str) -> tuple[np.ndarray, np.ndarray]:
        """External ids -> internal indices where known, and which were known (never raises for unknown ids).

        Compared in the map's type: an integer map parses text (spaces ignored; unparsable text is unknown) and
        matches floats only when integral; a text map compares the text of anything.

        Parameters
        ----------
        ids : ndarray, list, int or str
            External ids.

        Returns
        -------
        index : ndarray of int64
            Same shape as ``ids``; meaningful only where ``found``.
        found : ndarray of bool
            Same shape as ``ids``.
        """
        arr = np.asarray(ids)
        values, valid = arr.ravel(), True  # values in the map's type; valid: those that could be converted
        if self.ids.dtype.kind != "i":
            values = values if values.dtype.kind == "U" else values.astype(str)
        elif values.dtype.kind == "f":
            valid = np.isfinite(values) & (values == np.floor(values))
            values = np.where(valid, values, 0).astype(np.int64)
        elif values.dtype.kind not in "iub":
            parsed = pl.Series(values.astype(str)).str.strip_chars().cast(pl.Int64, strict=False)
            values, valid = parsed.fill_null(0).to_numpy().astype(np.int64), parsed.is_not_null().to_numpy()
        if len(self.ids) == 0:
            return np.zeros(arr.shape, np.int64), np.zeros(arr.shape, bool)
        idx = np.minimum(np.searchsorted(self.ids, values), len(self.ids) - 1).astype(np.int64)
        found = (self.ids[idx] == values) & valid
        return idx.reshape(arr.shape), found.reshape(arr.shape)

    def to_index(self, ids: np.ndarray | list | int | str) -> np.ndarray:
        """External ids -> internal indices (int64 array of the same shape).

        Parameters
        ----------
        ids : ndarray, list, int or str
            External ids (compared as in :meth:`lookup`).

        Returns
        -------
        ndarray of int64
            Same shape as ``ids``.

        Raises
        ------
        DataError
            An id is not in the map (the message names the first unknown id).
        """
        idx, ok = self.lookup(ids)
        if not np.all(ok):
            bad = np.asarray(ids)[~ok].ravel()[0]
            raise DataError(f"unknown {self.name} {bad}: not in the id map ({len(self)} ids)")
        return idx

    def to_external(self, index: np.ndarray | list | int) -> np.ndarray:
        """Internal indices -> external ids.

        Parameters
        ----------
        index : ndarray, list or int
            Internal indices in ``0..n-1``.

        Returns
        -------
        ndarray
            External ids, same shape as ``index``, dtype of the map.

        Raises
        ------
        DataError
            An index is outside ``0..n-1``.
        """
        arr = np.asarray(index, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise DataError(f"{self.name} index out of range 0..{len(self) - 1}")
        return self.ids[arr]


def _normalised(arr: np.ndarray) -> np.ndarray:
    """Ids as a map holds them: integers as int64, anything else as str."""
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    return arr if arr.dtype.kind == "U" else arr.astype(str)


def align(ids_a: np.ndarray, ids_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the ids both sides know: ``(ia, ib)`` with ``ids_a[ia] == ids_b[ib]``, in ``ids_a`` order.

    Parameters
    ----------
    ids_a, ids_b : ndarray of shape (n_a,) and (n_b,)
        External ids, each without duplicates; compared as str when their dtype kinds differ (a run on integer
        ids against one on text ids still pairs ``13`` with ``"13"``).

    Returns
    -------
    ia, ib : ndarray of shape (n_common,), int64
        Positions in ``ids_a`` (ascending) and the matching positions in ``ids_b``.
    """
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    if ids_a.dtype.kind != ids_b.dtype.kind:
        ids_a, ids_b = ids_a.astype(str), ids_b.astype(str)
    _, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    order = np.argsort(ia, kind="stable")
    return ia[order].astype(np.int64), ib[order].astype(np.int64)


@dataclass(frozen=True)
class FeatureMatrix:
    """Sparse feature matrix with the names of its columns.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix of shape (n_rows, n_features), float32
    tokens : list of str, length n_features
        Namespaced feature names, e.g. ``"item=1"``, ``"genre=Comedy"``.
    """

    matrix: sp.csr_matrix
    tokens: list[str]

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    def row_tokens(self, row: int) -> list[str]:
        """The feature tokens of one row (for inspection in notebooks).

        Parameters
        ----------
        row : int
            Internal user or item index.

        Returns
        -------
        list of str
            Tokens with a stored entry in that row, in column order.
        """
        lo, hi = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        return [self.tokens[j] for j in self.matrix.indices[lo:hi]]


def _token_matrix(long: pl.DataFrame, n_rows: int, normalize: bool) -> FeatureMatrix:
    """``long``: ``row`` (Int64), ``token`` (Utf8), ``weight`` (Float64); summed per distinct (row, token)."""
    long = long.group_by("row", "token").agg(pl.col("weight").sum())
    tokens = long["token"].unique().sort()
    tok_idx = long.join(pl.DataFrame({"token": tokens}).with_row_index("col"), on="token")
    m = sp.csr_matrix((tok_idx["weight"].to_numpy().astype(np.float32),
                       (tok_idx["row"].to_numpy(), tok_idx["col"].to_numpy().astype(np.int64))),
                      shape=(n_rows, len(tokens)))
    if normalize:
        sums = np.asarray(m.sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        m = sp.diags((1.0 / sums).astype(np.float32)) @ m
    m = m.tocsr().astype(np.float32)
    m.sort_indices()
    return FeatureMatrix(matrix=m, tokens=tokens.to_list())


def _identity_long(idmap: IdMap, prefix: str) -> pl.DataFrame:
    return pl.DataFrame({"row": np.arange(len(idmap), dtype=np.int64), "id": idmap.ids}).select(
        "row", pl.concat_str(pl.lit(f"{prefix}="), pl.col("id").cast(pl.Utf8)).alias("token"),
        pl.lit(1.0).alias("weight"))


def identity_features(idmap: IdMap, prefix: str) -> FeatureMatrix:
    """Identity features only (pure collaborative filtering): an (n, n) identity matrix, tokens ``prefix=id``.

    Parameters
    ----------
    idmap : IdMap
        Users or items.
    prefix : str
        Token prefix (``user`` or ``item``).

    Returns
    -------
    FeatureMatrix
        csr_matrix of shape (n, n), float32, with n tokens.
    """
    return FeatureMatrix(matrix=sp.identity(len(idmap), dtype=np.float32, format="csr"),
                         tokens=_identity_long(idmap, prefix)["token"].to_list())


def column_tokens(table: pl.DataFrame, column: str, *, n_buckets: int = 5, prefix: str | None = None) -> pl.DataFrame:
    """Tokens of one side-feature column, by its type.

    Parameters
    ----------
    table : pl.DataFrame
        Has ``row`` (Int64 internal index) and ``column``.
    column : str
    n_buckets : int
        Quantile buckets for numeric columns.
    prefix : str, optional
        Token namespace (default: the column name).

    Returns
    -------
    pl.DataFrame
        ``row, token, weight`` (weight 1.0); null values give no token.
    """
    prefix = prefix or column
    dtype = table.schema[column]
    col = pl.col(column)
    if isinstance(dtype, pl.List):
        src = table.select("row", col.alias("v")).explode("v")
        value = pl.col("v").cast(pl.Utf8)
    elif dtype.is_numeric() and dtype != pl.Boolean:
        src = table.select("row", _bucket_labels(table[column].cast(pl.Float64).to_numpy(), n_buckets).alias("v"))
        value = pl.col("v")
    elif isinstance(dtype, (pl.Date, pl.Datetime)):
        src = table.select("row", ((col.dt.year() // 10) * 10).cast(pl.Utf8).alias("v"))
        value = pl.col("v") + pl.lit("s")
    else:
        src = table.select("row", col.cast(pl.Utf8).alias("v"))
        value = pl.col("v")
    return (src.filter(pl.col("v").is_not_null())
            .select(pl.col("row").cast(pl.Int64), pl.concat_str(pl.lit(f"{prefix}="), value).alias("token"),
                    pl.lit(1.0).alias("weight")))


def _bucket_labels(values: np.ndarray, n_buckets: int) -> pl.Series:
    """Quantile buckets ``[lo, hi)`` (last one ``[lo, hi]``) of a numeric column; NaN -> null."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return pl.Series([None] * len(values), dtype=pl.Utf8)
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, n_buckets + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    idx = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    labels = np.array([f"[{lo:g}, {hi:g}{']' if j == len(edges) - 2 else ')'}"
                       for j, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))])
    out = labels[idx].astype(object)
    out[~np.isfinite(values)] = None
    return pl.Series(out.tolist(), dtype=pl.Utf8)


def _activity_bucket(n: pl.Expr) -> pl.Expr:
    """log2 buckets of a count: 1, 2-3, 4-7, 8-15, ..."""
    lo = (pl.lit(2.0).pow(n.cast(pl.Float64).log(2).floor())).cast(pl.Int64)
    return pl.when(lo == 1).then(pl.lit("1")).otherwise(pl.format("{}-{}", lo, lo * 2 - 1))


@dataclass(frozen=True)
class Dataset:
    """Everything the model layer needs, in internal index space.

    Attributes
    ----------
    users, items : IdMap
    interactions : pl.DataFrame
        ``user_idx: Int64, item_idx: Int64, weight: Float64, ts: Datetime`` sorted by ``ts``.
    user_features, item_features : FeatureMatrix
        Identity plus configured static side features; shapes (n_users, n_user_features),
        (n_items, n_item_features).
    titles : pl.DataFrame
        ``item_id, title`` for display.
    config : FeatureConfig
    """

    users: IdMap
    items: IdMap
    interactions: pl.DataFrame
    user_features: FeatureMatrix
    item_features: FeatureMatrix
    titles: pl.DataFrame
    config: FeatureConfig
    _user_long: pl.DataFrame
    _item_meta: pl.DataFrame

    @property
    def shape(self) -> tuple[int, int]:
        """(n_users, n_items)."""
        return len(self.users), len(self.items)

    def window_tokens(self, cutoff: datetime) -> pl.DataFrame:
        """Time-windowed user tokens (``row, token, weight``) from interactions in ``[cutoff - w, cutoff)``.

        Parameters
        ----------
        cutoff : datetime
            End of the windows (excluded); each window covers ``config.windows`` days (one per entry) before it.

        Returns
        -------
        pl.DataFrame
            ``row`` (Int64, internal user index), ``token`` (Utf8: ``activity_<w>d=<bucket>`` and, with
            ``config.window_category``, ``taste_<w>d.<column>=<value>``), ``weight`` (Float64: 1 for activity, the
            category's share of the user's window interactions for taste). Empty when no window is configured.
        """
        cfg = self.config
        parts = []
        for days in cfg.windows:
            recent = self.interactions.filter((pl.col("ts") < cutoff) & (pl.col("ts") >= cutoff - timedelta(days=days)))
            counts = recent.group_by("user_idx").len()
            parts.append(counts.select(pl.col("user_idx").alias("row"),
                                       pl.concat_str(pl.lit(f"activity_{days}d="), _activity_bucket(pl.col("len")))
                                       .alias("token"), pl.lit(1.0).alias("weight")))
            if cfg.window_category:
                cat = self._item_meta.select(pl.col("row").alias("item_idx"), pl.col(cfg.window_category).alias("v"))
                if isinstance(cat.schema["v"], pl.List):
                    cat = cat.explode("v")
                shares = (recent.join(cat.filter(pl.col("v").is_not_null()), on="item_idx")
                          .group_by("user_idx", "v").len()
                          .with_columns((pl.col("len") / pl.col("len").sum().over("user_idx")).alias("weight")))
                parts.append(shares.select(pl.col("user_idx").alias("row"),
                                           pl.concat_str(pl.lit(f"taste_{days}d.{cfg.window_category}="),
                                                         pl.col("v").cast(pl.Utf8)).alias("token"), "weight"))
        if not parts:
            return pl.DataFrame(schema={"row": pl.Int64, "token": pl.Utf8, "weight": pl.Float64})
        return pl.concat([p.with_columns(pl.col("row").cast(pl.Int64), pl.col("weight").cast(pl.Float64))
                          for p in parts])

    def user_features_at(self, cutoff: datetime) -> FeatureMatrix:
        """Static user features plus time-windowed ones computed at ``cutoff`` (just the static ones when
        ``config.windows`` is empty).

        Parameters
        ----------
        cutoff : datetime
            End of the windows (excluded), e.g. the split cutoff, so that no feature sees the test period.

        Returns
        -------
        FeatureMatrix
            csr_matrix of shape (n_users, n_tokens), float32.
        """
        if not self.config.windows:
            return self.user_features
        return _token_matrix(pl.concat([self._user_long, self.window_tokens(cutoff)]), len(self.users),
                             self.config.normalize)

    def without_windows(self) -> "Dataset":
        """The same dataset with time-windowed features switched off (the static hybrid).

        Returns
        -------
        Dataset
            A copy; ``self`` is unchanged.
        """
        return replace(self, config=replace(self.config, windows=()))


def _side_long(table: pl.DataFrame, key: str, idmap: IdMap, prefix: str, columns: tuple[str, ...],
               n_buckets: int, what: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows = table.with_columns(pl.Series("row", idmap.to_index(table[key].to_numpy()), dtype=pl.Int64))
    for c in columns:
        if c not in table.columns or c == key:
            available = [x for x in table.columns if x != key]
            raise ConfigError(f"no column {c!r} in the {what} table; available: {available}",
                              parameter=f"features.{what[:-1]}")
    parts = [_identity_long(idmap, prefix)] + [column_tokens(rows, c, n_buckets=n_buckets) for c in columns]
    return pl.concat(parts), rows


def build_dataset(interactions: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                  features: FeatureConfig | None = None) -> Dataset:
    """Build id maps, interactions in index space and the feature matrices.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_id, item_id, weight, ts``.
    users : pl.DataFrame
        ``user_id`` plus the columns named in ``features.user``.
    items : pl.DataFrame
        ``item_id, title`` plus the columns named in ``features.item`` (and ``features.window_category``).
    features : FeatureConfig, optional
        Which columns become side features (default: ``FeatureConfig()``).

    Returns
    -------
    Dataset
        Users and items are the union of the metadata tables and the interaction log, so items with no
        interactions yet (cold start) still get a row built from their side features.

    Raises
    ------
    DataError
        A required column is missing.
    ConfigError
        A configured feature column does not exist (the message lists the available ones).
    """
    features = features or FeatureConfig()
    for name, df, cols in (("interactions", interactions, ("user_id", "item_id", "weight", "ts")),
                           ("users", users, ("user_id",)), ("items", items, ("item_id", "title"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"table {name}: missing column(s) {missing}; has {df.columns}")
    if features.window_category and features.window_category not in items.columns:
        raise ConfigError(f"no column {features.window_category!r} in the items table; available: "
                          f"{[c for c in items.columns if c != 'item_id']}", parameter="features.window_category")
    umap = IdMap(np.concatenate([users["user_id"].to_numpy(), interactions["user_id"].to_numpy()]), "user_id")
    imap = IdMap(np.concatenate([items["item_id"].to_numpy(), interactions["item_id"].to_numpy()]), "item_id")
    by_time = interactions.sort("ts", maintain_order=True)
    inter = by_time.select(
        pl.Series("user_idx", umap.to_index(by_time["user_id"].to_numpy()), dtype=pl.Int64),
        pl.Series("item_idx", imap.to_index(by_time["item_id"].to_numpy()), dtype=pl.Int64),
        pl.col("weight"), pl.col("ts"))
    user_long, _ = _side_long(users, "user_id", umap, "user", features.user, features.n_buckets, "users")
    item_long, item_meta = _side_long(items, "item_id", imap, "item", features.item_columns(items.columns),
                                      features.n_buckets, "items")
    return Dataset(users=umap, items=imap, interactions=inter,
                   user_features=_token_matrix(user_long, len(umap), features.normalize),
                   item_features=_token_matrix(item_long, len(imap), features.normalize),
                   titles=items.select("item_id", "title"), config=features, _user_long=user_long,
                   _item_meta=item_meta)
