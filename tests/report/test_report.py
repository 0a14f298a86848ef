"""``report.html`` of real retrains on a generated log (fast settings), read as a reviewer would and opened in
headless Chromium with the network unreachable: the verdict sentence comes first and names the promotion, tables
have no dtype row, no shape and no elision, the guardrails read passed, nothing is fetched from a CDN."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recsys_lab.runs.execute import execute

from ..conftest import ROOT, generated_config
from ..ops.test_monitor import _chromium, _open_offline, needs_chromium

FAST = {"model.no_components": 8, "eval.baselines": ["popularity"], "eval.bootstrap": 100,
        "eval.item_category": "category", "eval.user_groups": [], "gate.min": {}, "gate.max_regression": {},
        "gate.not_worse_than": []}


class _Text(HTMLParser):
    """The visible text of a page, in order (no head, style or script)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag, attrs):  # noqa: ANN001
        self._hidden += tag in ("head", "style", "script", "title")

    def handle_endtag(self, tag):  # noqa: ANN001
        self._hidden -= tag in ("head", "style", "script", "title")

    def handle_data(self, data):  # noqa: ANN001
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def _visible(page: str) -> list[str]:
    parser = _Text()
    parser.feed(page)
    return parser.parts


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    """A promoted first run, then a second refused by its gate (an impossible floor) with production re-scored."""
    d = tmp_path_factory.mktemp("report")
    cfg = generated_config(d, 150, 120, 3_000, seed=4, categories=4, **FAST)
    first = execute(cfg, runs_dir=d / "runs", notebook=ROOT / "notebooks" / "retrain.ipynb", promote_if_passed=True)
    assert first.promoted, first.reason
    cfg = cfg.replace({"gate.min": {"ndcg@k": 0.99}, "gate.max_regression": {"ndcg@k": 0.1}})
    second = execute(cfg, runs_dir=d / "runs", notebook=ROOT / "notebooks" / "retrain.ipynb", promote_if_passed=True)
    assert second.status == "succeeded" and not second.promoted
    return first.run_dir, second.run_dir


def test_the_first_visible_text_is_the_verdict_naming_the_promotion(runs):
    first, _ = runs
    page = (first / "report.html").read_text()
    text = _visible(page)
    assert text[0] == f"Promoted: run {first.name} passed its gate (no check configured) and became production."
    assert f"<title>recsys_lab run {first.name}</title>" in page
    assert "No production run yet: nothing to compare with." in text
    assert any(t.startswith("Took ") and "within the SLA" in t for t in text)


def test_the_page_is_self_contained(runs):
    for run in runs:
        page = (run / "report.html").read_text()
        assert not re.findall(r"<script[^>]*\bsrc=|<link[^>]*\bhref=\S*https?:", page)
        assert "cdnjs" not in page and "require.min.js" not in page


def test_tables_have_no_shape_dtype_quotes_or_elision_and_no_local_repr(runs):
    first, _ = runs
    page = (first / "report.html").read_text()
    tables = re.findall(r"<table.*?</table>", page, re.S)
    assert len(tables) >= 8 and all('class="rl-table"' in t for t in tables)
    assert "shape: (" not in page and "…" not in page and "&hellip;" not in page
    assert "datetime.datetime" not in page and "PosixPath" not in page and str(first.parents[1]) not in page
    assert not any(re.search(r"<td[^>]*>&quot;|<td[^>]*>\"", t) for t in tables)  # no quoted strings
    assert page.count("paired ndcg@10, model - baseline") == 0  # the summary is the verdict card, once
    personas = re.findall(r"<tr><td>([\w-]+)</td><td class=\"num\">1</td>", page)
    assert len(personas) == 3  # every persona of the generated log (no row elided)


def test_the_guardrail_rows_say_passed(runs):
    first, _ = runs
    page = (first / "report.html").read_text()
    rows = re.findall(r"<tr><td>(\w+)</td><td>\w+</td><td class=\"num\">0</td><td class=\"(\w+)\">", page)
    assert len(rows) == 10 and {r for _, r in rows} == {"passed"}


def test_a_refused_run_says_why_in_full_and_compares_with_production(runs):
    first, second = runs
    text = _visible((second / "report.html").read_text())
    assert text[0].startswith(f"Not promoted: run {second.name} failed its gate: ndcg@10 = ")
    assert "< floor 0.99" in text[0]
    prod = text[text.index("Against production") + 1]
    assert prod.startswith("NDCG@10 ") and "paired over the same users" in prod
    assert "failed" in text and any("< floor 0.99" in t for t in text[3:])  # the gate table, message in full


@needs_chromium
def test_chromium_renders_the_verdict_with_the_network_unreachable(runs, tmp_path):
    first, _ = runs
    dom, leaving = _open_offline(first / "report.html", tmp_path)
    assert f"Promoted: run {first.name} passed its gate" in dom
    assert "Took " in dom and leaving == []
    shot = tmp_path / "report.png"
    _chromium((first / "report.html").as_uri(), tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    assert shot.is_file() and shot.stat().st_size > 10_000
