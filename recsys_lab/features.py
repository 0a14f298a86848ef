"""Id maps and sparse feature matrices, built with Polars (no Python loops over rows).

Feature tokens are namespaced (``user=42``, ``genre=Comedy``, ``occupation=writer``): in LightFM, ids and
feature names share one index space (lyst/lightfm#478), so an un-prefixed ``"1"`` could mean a user id, an
item id or an age. Every row gets its identity token, so the hybrid model keeps a per-user and per-item
embedding and side features add to it (LightFM paper, Kula 2015, arXiv:1507.08439, section 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp

from .config import FeatureConfig
from .errors import DataError

__all__ = ["IdMap", "FeatureMatrix", "Dataset", "build_dataset", "identity_features", "AGE_BUCKETS"]

AGE_BUCKETS = ((0, "<18"), (18, "18-24"), (25, "25-34"), (35, "35-44"), (45, "45-49"), (50, "50-55"),
               (56, "56+"))
"""Age buckets (lower bound, label), as in the MovieLens 1M ``users.dat`` coding."""


class IdMap:
    """Bijection between external ids and contiguous internal indices ``0..n-1`` (sorted external order).

    Parameters
    ----------
    ids : array-like of int64, shape (n,)
        External ids; duplicates are dropped.
    name : str
        What the ids are (``"user_id"``), used in error messages.
    """

    def __init__(self, ids: np.ndarray | list, name: str) -> None:
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))
        self.name = name

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"IdMap({self.name}, n={len(self)})"

    def to_index(self, ids: np.ndarray | list | int) -> np.ndarray:
        """External ids -> internal indices (int64 array of the same shape).

        Raises
        ------
        DataError
            An id is not in the map (the message names the first unknown id).
        """
        arr = np.asarray(ids, dtype=np.int64)
        if len(self.ids) == 0:
            ok = np.zeros(arr.shape, dtype=bool)
            idx = np.zeros(arr.shape, dtype=np.int64)
        else:
            idx = np.minimum(np.searchsorted(self.ids, arr), len(self.ids) - 1)
            ok = self.ids[idx] == arr
        if not np.all(ok):
            bad = arr[~ok].ravel()[0]
            raise DataError(f"unknown {self.name} {bad}: not in the id map ({len(self)} ids)")
        return idx

    def to_external(self, index: np.ndarray | list | int) -> np.ndarray:
        """Internal indices -> external ids.

        Raises
        ------
        DataError
            An index is outside ``0..n-1``.
        """
        arr = np.asarray(index, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self)):
            raise DataError(f"{self.name} index out of range 0..{len(self) - 1}")
        return self.ids[arr]


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
        """The feature tokens of one row (for inspection in notebooks)."""
        lo, hi = self.matrix.indptr[row], self.matrix.indptr[row + 1]
        return [self.tokens[j] for j in self.matrix.indices[lo:hi]]


@dataclass(frozen=True)
class Dataset:
    """Everything the model layer needs, in internal index space.

    Attributes
    ----------
    users, items : IdMap
    interactions : pl.DataFrame
        ``user_idx: Int64, item_idx: Int64, rating: Float64, ts: Datetime`` sorted by ``ts``.
    user_features, item_features : FeatureMatrix
        Identity plus configured side features; shapes (n_users, n_user_features), (n_items, n_item_features).
    titles : pl.DataFrame
        ``item_id, title`` for display.
    """

    users: IdMap
    items: IdMap
    interactions: pl.DataFrame
    user_features: FeatureMatrix
    item_features: FeatureMatrix
    titles: pl.DataFrame

    @property
    def shape(self) -> tuple[int, int]:
        """(n_users, n_items)."""
        return len(self.users), len(self.items)


def _token_matrix(long: pl.DataFrame, n_rows: int, normalize: bool) -> FeatureMatrix:
    """``long`` has columns ``row`` (Int64 index) and ``token`` (Utf8); one nonzero per distinct pair."""
    long = long.unique()
    tokens = long["token"].unique().sort()
    tok_idx = long.join(pl.DataFrame({"token": tokens}).with_row_index("col"), on="token")
    rows = tok_idx["row"].to_numpy()
    cols = tok_idx["col"].to_numpy().astype(np.int64)
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, len(tokens)))
    if normalize:
        sums = np.asarray(m.sum(axis=1)).ravel()
        sums[sums == 0] = 1.0
        m = sp.diags((1.0 / sums).astype(np.float32)) @ m
    m = m.tocsr().astype(np.float32)
    m.sort_indices()
    return FeatureMatrix(matrix=m, tokens=tokens.to_list())


def identity_features(idmap: IdMap, prefix: str) -> FeatureMatrix:
    """Identity features only (pure collaborative filtering): an (n, n) identity matrix, tokens ``prefix=id``."""
    n = len(idmap)
    return FeatureMatrix(matrix=sp.identity(n, dtype=np.float32, format="csr"),
                         tokens=_identity_tokens(idmap, prefix).to_list())


def _identity_tokens(idmap: IdMap, prefix: str) -> pl.Series:
    return pl.DataFrame({"id": idmap.ids}).select(
        pl.concat_str(pl.lit(f"{prefix}="), pl.col("id").cast(pl.Utf8)).alias("token"))["token"]


def _age_label() -> pl.Expr:
    expr = pl.lit(AGE_BUCKETS[0][1])
    for lo, label in AGE_BUCKETS[1:]:
        expr = pl.when(pl.col("age") >= lo).then(pl.lit(label)).otherwise(expr)
    return expr


def _user_tokens(users: pl.DataFrame, families: tuple[str, ...]) -> list[pl.DataFrame]:
    out = []
    if "age" in families:
        out.append(users.select("row", pl.concat_str(pl.lit("age="), _age_label()).alias("token")))
    for fam in ("gender", "occupation"):
        if fam in families:
            out.append(users.filter(pl.col(fam).is_not_null())
                       .select("row", pl.concat_str(pl.lit(f"{fam}="), pl.col(fam)).alias("token")))
    return out


def _item_tokens(items: pl.DataFrame, families: tuple[str, ...]) -> list[pl.DataFrame]:
    out = []
    if "genre" in families:
        out.append(items.select("row", "genres").explode("genres").filter(pl.col("genres").is_not_null())
                   .select("row", pl.concat_str(pl.lit("genre="), pl.col("genres")).alias("token")))
    if "decade" in families:
        decade = (pl.col("release_date").dt.year() // 10 * 10).cast(pl.Utf8)
        out.append(items.filter(pl.col("release_date").is_not_null())
                   .select("row", pl.concat_str(pl.lit("decade="), decade, pl.lit("s")).alias("token")))
    return out


def build_dataset(interactions: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                  features: FeatureConfig | None = None) -> Dataset:
    """Build id maps, interactions in index space and the feature matrices.

    Parameters
    ----------
    interactions : pl.DataFrame
        ``user_id, item_id, rating, ts``.
    users : pl.DataFrame
        ``user_id`` plus ``age, gender, occupation`` (used if configured).
    items : pl.DataFrame
        ``item_id, title`` plus ``genres`` (list) and ``release_date`` (used if configured).
    features : FeatureConfig, optional
        Which side-feature families to add to the identity features (default: ``FeatureConfig()``).

    Returns
    -------
    Dataset
        Users and items are the union of the metadata tables and the interaction log, so items with no
        interactions yet (cold start) still get a row built from their side features.

    Raises
    ------
    DataError
        A required column is missing.
    """
    features = features or FeatureConfig()
    for name, df, cols in (("interactions", interactions, ("user_id", "item_id", "rating", "ts")),
                           ("users", users, ("user_id",)), ("items", items, ("item_id", "title"))):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise DataError(f"table {name}: missing column(s) {missing}; has {df.columns}")
    umap = IdMap(np.concatenate([users["user_id"].to_numpy(), interactions["user_id"].to_numpy()]), "user_id")
    imap = IdMap(np.concatenate([items["item_id"].to_numpy(), interactions["item_id"].to_numpy()]), "item_id")
    by_time = interactions.sort("ts", maintain_order=True)
    inter = by_time.select(
        pl.Series("user_idx", umap.to_index(by_time["user_id"].to_numpy())),
        pl.Series("item_idx", imap.to_index(by_time["item_id"].to_numpy())),
        pl.col("rating"), pl.col("ts"))

    def side(table: pl.DataFrame, key: str, idmap: IdMap, prefix: str, maker, fams) -> FeatureMatrix:
        rows = table.with_columns(pl.Series("row", idmap.to_index(table[key].to_numpy())))
        ident = pl.DataFrame({"row": np.arange(len(idmap), dtype=np.int64),
                              "token": _identity_tokens(idmap, prefix)})
        parts = [ident] + [p.with_columns(pl.col("row").cast(pl.Int64)) for p in maker(rows, fams)]
        return _token_matrix(pl.concat(parts), len(idmap), features.normalize)

    uf = side(users, "user_id", umap, "user", _user_tokens, features.user)
    itf = side(items, "item_id", imap, "item", _item_tokens, features.item)
    return Dataset(users=umap, items=imap, interactions=inter, user_features=uf, item_features=itf,
                   titles=items.select("item_id", "title"))
