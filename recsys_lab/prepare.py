"""From a warehouse snapshot to what models train on: the dataset (id maps, feature matrices, weights transformed)
and the split, the one way a retrain builds them and a saved run rebuilds them (:mod:`recsys_lab.serving.cold_start`)."""

from __future__ import annotations

import scipy.sparse as sp

from recsys_lab.config import Config
from recsys_lab.data import weights
from recsys_lab.data.warehouse import Snapshot
from recsys_lab.errors import ConfigError
from recsys_lab.features import Dataset, build_dataset
from recsys_lab.split import Split, make_split

__all__ = ["dataset_and_split", "hybrid_features"]


def dataset_and_split(snapshot: Snapshot, config: Config) -> tuple[Dataset, Split]:
    """Id maps and feature matrices from ``snapshot`` (``data.weight_transform`` applied), then the split.

    Parameters
    ----------
    snapshot : Snapshot
        The warehouse snapshot (its ``interactions``, ``users`` and ``items`` tables).
    config : Config
        ``data`` (transform, positive rule), ``features``, ``split`` and ``eval.k``.

    Returns
    -------
    dataset : Dataset
    split : Split
        With at least one warm test user.

    Raises
    ------
    ConfigError
        ``eval.k`` larger than the catalogue, or a split method the data cannot support.
    DataError
        No user has both training and test positives.
    """
    inter, users, items = (snapshot.table(t) for t in ("interactions", "users", "items"))
    dataset = build_dataset(inter.with_columns(weights.transform(config.data.weight_transform)), users, items,
                            config.features)
    if config.eval.k > len(dataset.items):
        raise ConfigError(f"must be at most the catalogue size ({len(dataset.items)} items), got {config.eval.k}",
                          parameter="eval.k")
    split = make_split(dataset.interactions, dataset.shape, config.split, seed=config.split.seed,
                       positive_threshold=weights.positive_threshold(config.data),
                       windows=bool(config.features.windows))
    return dataset, split.require_warm_users()


def hybrid_features(dataset: Dataset, split: Split) -> tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix | None]:
    """The hybrid model's feature matrices on ``split``, as the retrain and a sweep trial fit it.

    Parameters
    ----------
    dataset : Dataset
    split : Split
        Its ``cutoff`` and ``validation_cutoff`` (None for protocols without a global cut-off).

    Returns
    -------
    user_features : csr_matrix of shape (n_users, n_user_features)
        As of the training cut-off (time-windowed features see nothing after it).
    item_features : csr_matrix of shape (n_items, n_item_features)
    fit_user_features : csr_matrix or None
        As of the validation cut-off, for the early-stopping phase; None without one (use ``user_features``).
    """
    uf = dataset.user_features_at(split.cutoff).matrix if split.cutoff else dataset.user_features.matrix
    fit_uf = dataset.user_features_at(split.validation_cutoff).matrix if split.validation_cutoff else None
    return uf, dataset.item_features.matrix, fit_uf
