"""The sweep's report page: the winner, its paired interval against the base config with its users, and the
trial table sorted by validation with the early-stopped trials flagged (planted results, no Ray)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import polars as pl

from recsys_lab.scale.page import render, trial_view, verdict, write

TRIALS = pl.DataFrame({
    "trial": [0, 1, 2, 3],
    "overrides": [json.dumps({"model.learning_rate": lr}) for lr in (0.05, 0.1, 0.0005, 0.0001)],
    "status": ["finished", "finished", "stopped", "failed"],
    "epochs": [6, 6, 2, 0],
    "best_ndcg": [0.21, 0.25, 0.03, float("nan")],
    "curve": ["[]"] * 4,
    "error": [None, None, None, "RunError: boom"],
})
WINNER = {"trial": 1, "overrides": {"model.learning_rate": 0.1}, "validation_ndcg": 0.25}
VS = {"metric": "ndcg@10", "a": 0.2012, "b": 0.2187, "delta": 0.0175, "ci_low": 0.0042, "ci_high": 0.0311,
      "significant": True, "n_users": 943}
COMPARISON = [{"trial": 1, "overrides": WINNER["overrides"], "run": "20260101T000000Z-bbbbbb", "status": "succeeded",
               "base_run": "20260101T000000Z-aaaaaa", "base_status": "succeeded", "vs_base": VS,
               "promotion": {"requested": True, "promoted": True, "gate_passed": True, "reason": None}}]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "title")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "title")

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def _visible(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    return parser.parts


def test_trial_view_sorts_by_validation_and_flags_early_stops():
    view = trial_view(TRIALS)
    assert view["trial"].to_list() == [1, 0, 2, 3]  # the failed trial (no metric) last
    assert view["stopped_early"].to_list() == ["no", "no", "yes", "no"]
    assert view["setting"][0] == "learning_rate = 0.1" and view["epochs"].to_list() == [6, 6, 2, 0]


def test_page_holds_the_winner_and_its_paired_interval(tmp_path):
    folder = tmp_path / "sweeps" / "20260101T000000Z-swpswp"
    folder.mkdir(parents=True)
    path = write(folder, TRIALS, WINNER, COMPARISON, {"search": "grid", "scheduler": "asha",
                                                      "timings": {"search": 12.34}})
    assert path == folder / "report.html" and path.is_file()
    page = path.read_text()
    text = _visible(page)
    assert text[0] == "Sweep 20260101T000000Z-swpswp"
    assert text[1] == ("Winner: trial 1 (learning_rate = 0.1), validation NDCG 0.2500. Re-run as a retrain it is "
                       "better than the base config on the test split: ndcg@10 0.219 vs 0.201, difference +0.0175 "
                       "[+0.0042, +0.0311] (95% paired interval, 943 users).")
    assert "4 trials: 2 finished, 1 stopped early, 1 failed; search grid, scheduler asha; search took 12.3 s" in text[2]
    assert "[0.004, 0.031]" in text and "943" in text and "RunError: boom" in text
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", page.split("Trials, best validation first")[1]) if "<td" in r]
    assert [re.findall(r"<td[^>]*>(.*?)</td>", r)[1] for r in rows] == ["1", "0", "2", "3"]
    assert "<script" not in page and "http" not in page.split("</style>")[1]


def test_verdict_without_a_comparison_or_a_winner():
    assert verdict(TRIALS, WINNER, [])[0].endswith("Not re-run: no comparison with the base config.")
    sentence, tone = verdict(TRIALS, WINNER, [{**COMPARISON[0], "vs_base": {**VS, "delta": -0.001, "ci_low": -0.01,
                                                                           "significant": False}}])
    assert "not distinguishable from the base config" in sentence and tone == "neutral"
    assert verdict(TRIALS.head(0), None, []) == ("No winner: none of the 0 trials finished.", "worse")
    assert "none" in _visible(render(TRIALS.head(0), None, [], sweep_id="x"))
