"""The grammar of metrics.json: keys built and parsed in one place, @k resolved one way."""

import math

import pytest

from recsys_lab import config
from recsys_lab.config import GateConfig
from recsys_lab.evaluation import keys
from recsys_lab.evaluation.gate import resolved


def test_build_and_parse_keys():
    assert keys.at("ndcg", 10) == "ndcg@10" and keys.split_at("ndcg@10") == ("ndcg", 10)
    assert keys.split_at("mrr") == ("mrr", None) and keys.split_at("cold.foldin.ndcg@10@n5") == ("cold.foldin.ndcg@10@n5", None)
    assert keys.ci("ndcg@10") == ("ndcg@10.ci_low", "ndcg@10.ci_high")
    assert keys.model_key("model", "ndcg@10") == "ndcg@10"
    assert keys.model_key("ease", "ndcg@10") == "baseline.ease.ndcg@10"
    assert keys.vs("ease", "ndcg@10") == "vs.ease.ndcg@10" and keys.production("ndcg@10") == "production.ndcg@10"
    assert keys.onboarded(keys.at("cold.diff.ndcg", 10), 5) == "cold.diff.ndcg@10@n5"


def test_resolve_at_k_only_as_a_whole_token():
    assert keys.resolve("ndcg@k", 20) == "ndcg@20"
    assert keys.resolve("ann.recall@k", 5) == "ann.recall@5"
    assert keys.resolve("ndcg@k.ci_low", 5) == "ndcg@5.ci_low"
    assert keys.resolve("fairness.user.age.ndcg@k.gap", 5) == "fairness.user.age.ndcg@5.gap"
    assert keys.resolve("mrr", 5) == "mrr" and keys.resolve("x@kilo", 5) == "x@kilo"
    assert keys.resolve_all({"ndcg@k": 0.1, "auc": 0.5}, 3) == {"ndcg@3": 0.1, "auc": 0.5}


def test_the_gate_resolves_with_the_same_rule():
    gate = resolved(GateConfig(min={"ndcg@k": 0.1}, max={"ann.recall@k.ci_low": 1.0},
                               max_regression={"recall@k": 0.1}), 7)
    assert gate.min == {"ndcg@7": 0.1} and gate.max == {"ann.recall@7.ci_low": 1.0}
    assert gate.max_regression == {"recall@7": 0.1}


def test_baselines_in_report_order_and_k_of():
    metrics = {"baseline.als.ndcg@10": 1, "baseline.zeta.ndcg@10": 1, "baseline.popularity.ndcg@10": 1,
               "baseline.ease.ndcg@10": 1, "eval.k": 10}
    assert keys.baselines(metrics) == ["popularity", "ease", "als", "zeta"]
    assert set(config.BASELINES) <= set(keys.BASELINES)  # the configurable ones, all in the report order
    assert keys.k_of(metrics) == 10 and keys.k_of({}) == keys.DEFAULT_K
    assert keys.k_of({"eval.k": math.nan}) == keys.DEFAULT_K and keys.k_of({"eval.k": True}) == keys.DEFAULT_K


class _Result:
    def __init__(self, metrics):
        self.metrics = metrics


def test_flatten_merges_results_in_order_and_skips_steps_not_run():
    out = keys.flatten([{"a": 1, "b": 2}, None, _Result({"c": 3, "a": 4})])
    assert out == {"a": 4, "b": 2, "c": 3} and list(out) == ["a", "b", "c"]


@pytest.mark.parametrize("k", [5, 20])
def test_report_tables_read_k_from_the_metrics(k):
    """A caller that forgets k once got empty tables (k defaulted to 10)."""
    from recsys_lab import report

    m = {f"ndcg@{k}": 0.3, f"ndcg@{k}.ci_low": 0.2, f"ndcg@{k}.ci_high": 0.4, f"recall@{k}": 0.5,
         f"baseline.ease.ndcg@{k}": 0.25, f"vs.ease.ndcg@{k}": 0.05, f"vs.ease.ndcg@{k}.ci_low": 0.01,
         f"vs.ease.ndcg@{k}.ci_high": 0.09, f"novelty@{k}": 2.0, f"embedding.item_coherence@{k}": 0.4,
         f"fairness.user.sex.ndcg@{k}.F": 0.3, f"fairness.user.sex.ndcg@{k}.F.n_users": 4, "eval.k": k,
         "eval.n_users": 9}
    table = report.evaluation_table(m)
    assert table[f"ndcg@{k}"].to_list() == [0.3, 0.25] and table["verdict"][1] == "model better"
    assert report.beyond_table(m)[f"novelty@{k}"][0] == 2.0
    assert report.user_fairness_table(m)[f"ndcg@{k}"].to_list() == [0.3]
    assert report.embedding_table(m)["value"].to_list() == [0.4]
    summary = report.format_summary(m)
    assert f"ndcg@{k}" in summary and f"paired ndcg@{k}, model - baseline: ease +0.0500" in summary
