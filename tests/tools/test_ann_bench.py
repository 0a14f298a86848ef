"""``bench --ann`` end to end on small sets (figures printed, not asserted as timings), and the test sets it uses."""

import numpy as np
import pytest

from recsys_lab.errors import ConfigError
from recsys_lab.tools.ann_sets import SETS, ann_sizes, vector_set


@pytest.mark.slow  # trains LightFM and ALS on generated logs, builds hnswlib graphs
def test_bench_ann_prints_recall_and_the_ratio_to_hnswlib_at_matched_recall_per_set(tmp_path):
    from recsys_lab.config import AnnConfig
    from recsys_lab.tools.ann_bench import ann_benchmark, ann_crossover

    lines = []
    figures = ann_benchmark((ann_sizes(3_000),), sets=("lightfm_a", "lightfm_b", "als"), n_queries=300, repeat=1,
                            epochs=2, cache_dir=tmp_path, config=AnnConfig(auto_min_items=1_000), echo=lines.append)
    text = "\n".join(lines)
    assert "hnsw ef" in text and "ratio 1t" in text and "Lowest recall" in text
    for name in ("lightfm_a", "lightfm_b", "als"):
        key = f"ann.{name}.3000"
        assert figures[f"{key}.recall"] >= 0.9  # calibrated to 0.96 on other users
        assert figures[f"{key}.hnsw.recall"] >= figures[f"{key}.recall"] or not figures[f"{key}.hnsw.matched"]
        assert figures[f"{key}.ratio_1t"] > 0 and figures[f"{key}.exact.qps_2t"] > 0
    assert figures["ann.min_recall"] == min(figures[f"ann.{n}.3000.recall"] for n in ("lightfm_a", "lightfm_b", "als"))
    assert (tmp_path / "lightfm_1500_3000_30000_2_0.npz").is_file()  # trained once, cached
    users, items = vector_set("lightfm_a", 3_000, epochs=2, cache_dir=tmp_path)
    cross = ann_crossover(users, items, sizes=(1_000, 2_000), n_queries=300, repeat=1, echo=lines.append)
    assert cross["crossover.2000.index_qps"] > 0 and cross["crossover.2000.recall"] >= 0.9


@pytest.mark.slow  # trains small LightFM models
def test_vector_sets_differ_in_shape_and_are_cached(tmp_path):
    a_users, a_items = vector_set("lightfm_a", 2_000, epochs=1, cache_dir=tmp_path)
    b_users, b_items = vector_set("lightfm_b", 2_000, epochs=1, cache_dir=tmp_path)
    assert a_items.shape == (2_000, 129) and b_items.shape == (2_000, 65) and a_users.shape[0] == 1_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lightfm_1000_2000_20000_1_0.npz", "lightfm_b_2000_1_0.npz"]
    again = vector_set("lightfm_b", 2_000, epochs=1, cache_dir=tmp_path)
    np.testing.assert_array_equal(again[1], b_items)
    with pytest.raises(ConfigError, match="unknown vector set"):
        vector_set("nope", cache_dir=tmp_path)
    assert SETS == ("lightfm_a", "lightfm_b", "als", "ml100k", "ml100k_grown")
