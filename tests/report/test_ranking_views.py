"""The ranking stage as a person sees it: the summary lines, the recall ceiling table, the feature-importance plot."""

from __future__ import annotations

import pytest

from recsys_lab import report

STAGE = {
    "eval.k": 10, "eval.n_users": 814, "ndcg@10": 0.185, "baseline.ease.ndcg@10": 0.190,
    "baseline.popularity.ndcg@10": 0.100,
    "blend.ndcg@10": 0.198, "blend.ndcg@10.ci_low": 0.183, "blend.ndcg@10.ci_high": 0.213,
    "blend.vs.best_single.ndcg@10": 0.0084, "blend.vs.best_single.ndcg@10.ci_low": 0.0025,
    "blend.vs.best_single.ndcg@10.ci_high": 0.0145,
    "ranker.ndcg@10": 0.190, "ranker.ndcg@10.ci_low": 0.175, "ranker.ndcg@10.ci_high": 0.205,
    "ranker.vs.best_single.ndcg@10": 0.0001, "ranker.vs.best_single.ndcg@10.ci_low": -0.009,
    "ranker.vs.best_single.ndcg@10.ci_high": 0.0095,
    "ranker.vs.blend.ndcg@10": -0.008, "ranker.vs.blend.ndcg@10.ci_low": -0.015,
    "ranker.vs.blend.ndcg@10.ci_high": -0.001,
    "blend.weight.model": 0.4, "blend.weight.ease": 0.6,
    "rank.recall_ceiling": 0.63, "rank.recall_ceiling.model": 0.53, "rank.recall_ceiling.ease": 0.52,
    "rank.n.model": 100.0, "rank.n.ease": 100.0, "rank.n_items": 100000.0, "rank.candidates_per_user": 161.4,
    "ranker.latency_ms.p50": 32.14, "ranker.latency_ms.p99": 70.26,
}


def test_the_summary_shows_each_stage_against_the_best_single_model_the_ceiling_and_the_latency():
    lines = report.ranking_lines(STAGE, 10)
    assert lines[0] == "ranking stage, ndcg@10 [95% interval]; paired stage - best single model (ease):"
    assert lines[1].split() == ["blend", "0.1980", "[0.1830,", "0.2130]", "+0.0084", "[+0.0025,", "+0.0145]",
                                "better"]
    assert lines[2].endswith("+0.0001 [-0.0090, +0.0095] n.s.")
    assert lines[3] == "  ranker - blend -0.0080 [-0.0150, -0.0010] worse"
    assert lines[4] == "  blend weights (validation): model 0.40, ease 0.60"
    assert lines[5] == ("candidate recall ceiling (test positives among the candidates): total 0.630; "
                        "model 0.530 (N 100), ease 0.520 (N 100); 161 candidates/user")
    assert lines[6] == ("ranker latency per user (candidates + features + ranker, 100,000 items): "
                        "p50 32.1 ms, p99 70.3 ms")
    summary = report.format_summary(STAGE)
    assert "\n".join(lines) in summary
    assert len(lines) == 7  # rank.serve = "model": nothing said about serving
    assert report.ranking_lines({**STAGE, "rank.serve_skipped": 0.0}, 10)[7] == \
        "served: the blend (rank.serve = 'blend', artifacts/blend.npz)"
    assert report.ranking_lines({**STAGE, "rank.serve_skipped": 1.0}, 10)[7] == \
        "served: the model (rank.serve = 'blend', but the blend's vectors were too large to save)"


def test_without_the_stage_the_summary_has_no_ranking_line():
    plain = {k: v for k, v in STAGE.items() if not k.startswith(("blend.", "ranker.", "rank."))}
    assert report.ranking_lines(plain, 10) == []
    assert "ranking stage" not in report.format_summary(plain)
    assert "recall ceiling" not in report.format_summary(plain)


def test_recall_ceiling_table_lists_each_generator_with_its_n_then_the_total():
    table = report.recall_ceiling_table(STAGE)
    assert table.to_dicts() == [{"generator": "model", "n": 100, "recall_ceiling": 0.53},
                                {"generator": "ease", "n": 100, "recall_ceiling": 0.52},
                                {"generator": "total", "n": None, "recall_ceiling": 0.63}]
    assert report.recall_ceiling_table({"ndcg@10": 0.1}).height == 0


def test_feature_importance_bars_are_shares_largest_first_with_the_rest_summed():
    from recsys_lab.report import plots

    fig = plots.feature_importance({"item.pop": 10.0, "ease.z": 60.0, "model.z": 20.0, "user.n_seen": 10.0}, top=2)
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_yticklabels()]
    widths = [p.get_width() for p in ax.patches]
    assert labels == ["other (2)", "model.z", "ease.z"]  # barh draws bottom-up: the largest is at the top
    assert widths == pytest.approx([0.2, 0.2, 0.6])
    assert ax.get_xlabel() == "share of total gain"
    empty = plots.feature_importance({})
    assert empty.axes[0].texts[0].get_text() == "no ranker was fitted"
