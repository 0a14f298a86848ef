"""serving.similar and item_space: the exact neighbours of the documented similarity, and an id map that finds
items by external id."""

from __future__ import annotations

import numpy as np
import pytest

from recsys_lab import serving
from recsys_lab.errors import RunError
from recsys_lab.serving.saved_run import served_run


def test_similar_items_are_the_exact_inner_product_neighbours(saved):
    runs_dir, _ = saved
    m = served_run(runs_dir, "production")
    df = serving.similar(runs_dir, "2", k=3)  # the CLI passes text
    e, b = m.item_vecs[:, :-1], m.item_vecs[:, -1]
    scores = e[1] @ e.T + b
    scores[1] = -np.inf
    assert df["item_id"].to_list() == m.item_ids[np.argsort(-scores)[:3]].tolist()
    assert set(df["path"]) == {"exact"} and 2 not in set(df["item_id"])
    with pytest.raises(RunError, match="unknown item_id 'x'"):
        serving.similar(runs_dir, "x")


def test_item_space_finds_items_by_external_id(saved):
    runs_dir, _ = saved
    space = serving.item_space(runs_dir, column="release_date")
    assert space.table["item_id"].to_list() == list(range(1, 7)) and space.item_vecs.shape == (6, 5)
    assert space.positions([6, 99, "2"]).tolist() == [5, 1]
