"""From a warehouse snapshot to what models train on: the dataset (id maps, feature matrices, weights transformed)
and the split, the one way a retrain builds them and a saved run rebuilds them (:mod:`recsys_lab.serving.cold_start`)."""

from __future__ import annotations

from recsys_lab.config import Config
from recsys_lab.data import weights
from recsys_lab.data.warehouse import Snapshot
from recsys_lab.errors import ConfigError
from recsys_lab.features import Dataset, build_dataset
from recsys_lab.split import Split, make_split

__all__ = ["dataset_and_split"]


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
