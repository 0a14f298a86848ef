"""The benchmark runs end to end on the real data (its figures are printed, not asserted as timings)."""

import pytest

from recsys_lab.config import Config
from recsys_lab.tools.bench import run


@pytest.mark.slow  # fits LightFM on ML-100k and times it
def test_bench_reports_ratios_against_baselines(ml100k_source, tmp_path):
    lines = []
    cfg = Config().replace({"data.path": str(ml100k_source), "data.warehouse": str(tmp_path / "wh"),
                            "model.epochs": 3})
    figures = run(cfg, repeat=1, large_items=3000, large_queries=200, gemm_size=3000, echo=lines.append)
    text = "\n".join(lines)
    assert "x the GEMM" in text and figures["topk_gemm.ratio"] > 0
    assert "vs LightFM.predict" in text and "vs exact numpy" in text and "numba compile" in text
    for key in ("topk.speedup", "metrics.speedup", "ann.small.speedup", "ann.large.speedup"):
        assert figures[key] > 0
    assert figures["ann.small.recall"] >= 0.9 and figures["ann.large.recall"] >= 0.9


@pytest.mark.slow  # fits LightFM on ML-100k and times it
def test_foldin_bench_reports_latency_and_throughput_against_baselines(ml100k_source, tmp_path):
    from recsys_lab.tools.bench import run_foldin

    lines = []
    cfg = Config().replace({"data.path": str(ml100k_source), "data.warehouse": str(tmp_path / "wh"),
                            "model.epochs": 2})
    figures = run_foldin(cfg, n_queries=30, large_items=3000, update_users=200, echo=lines.append)
    text = "\n".join(lines)
    assert "baseline: stored user vector" in text and "vs one call per user" in text and "full LightFM fit" in text
    for key in ("foldin.small.mean.p99_s", "foldin.large.ridge.p50_s", "foldin.small.stored.p99_s",
                "foldin.large.mean.update_users_per_s", "foldin.retrain_users_per_s"):
        assert figures[key] > 0
