"""Tables as plain HTML (every row, rounded, intervals as [lo, hi], nothing quoted or cut) and a self-contained
export: no CDN script, the run in the title, the verdict first and replaceable after the promotion."""

from __future__ import annotations

import re

import nbformat
import polars as pl
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from recsys_lab.evaluation import keys
from recsys_lab.report import html, tables


def test_format_value_rounds_and_never_quotes():
    f = html.format_value
    assert [f(0.23423812), f(21.61034), f(266.41406), f(58973.0434), f(None), f(float("nan"))] == [
        "0.234", "21.610", "266.4", "58,973", "–", "–"]
    assert [f(3000), f(100000), f(True), f("drama"), f(["a", "b"])] == ["3000", "100,000", "yes", "drama", "a, b"]


def test_frame_html_shows_every_row_without_shape_dtypes_or_elision():
    long = ("production is significantly better: ndcg@10 regressed by 12.5 % (more than 10 %), paired interval "
            "[-0.04, -0.01]")
    df = pl.DataFrame({"persona": [f"persona-{i // 10}" for i in range(50)], "rank": list(range(50)),
                       "score": [i / 7 for i in range(50)], "message": [long] * 50})
    out = html.frame_html(df)
    assert out.count("<tr>") == 51 and "persona-4" in out  # header + 50 rows: 5 of 5 personas
    assert "shape:" not in out and "…" not in out and "str</" not in out and "i64" not in out
    assert '"persona-0"' not in out and long in out  # not quoted, not cut
    assert "<td class=\"num\">0.143</td>" in out  # 1/7 rounded to 3 decimals


def test_frame_html_joins_interval_columns_and_reads_passed():
    m = {"eval.k": 10, "eval.n_users": 116, "ndcg@10": 0.234238, "ndcg@10.ci_low": 0.183011,
         "ndcg@10.ci_high": 0.272499, "recall@10": 0.3657, "recall@10.ci_low": 0.2868, "recall@10.ci_high": 0.43,
         "baseline.popularity.ndcg@10": 0.22, keys.vs("popularity", "ndcg@10"): 0.014,
         keys.vs("popularity", "ndcg@10") + ".ci_low": -0.0334, keys.vs("popularity", "ndcg@10") + ".ci_high": 0.0574}
    out = html.frame_html(tables.evaluation_table(m))
    assert "[0.183, 0.272]" in out and "[-0.033, 0.057]" in out and "ndcg 95% interval" in out
    assert "ci_low" not in out and "ci high" not in out
    gate = pl.DataFrame({"metric": ["ndcg@10", "recall@10"], "passed": [True, False]})
    cells = re.findall(r'<td class="(passed|failed)">', html.frame_html(gate))
    assert cells == ["passed", "failed"]


def test_a_frame_longer_than_max_rows_says_how_many_are_shown():
    out = html.frame_html(pl.DataFrame({"i": list(range(30))}), max_rows=20)
    assert out.count("<tr>") == 21 and "<caption>first 20 of 30 rows</caption>" in out


def test_an_empty_frame_says_none():
    assert ">none</td>" in html.frame_html(pl.DataFrame(schema={"a": pl.Utf8}))


def _notebook(tmp_path):
    table = pl.DataFrame({"check": ["null_keys"], "result": ["passed"]})
    cell = new_code_cell("t", execution_count=1, outputs=[new_output(
        "execute_result", {"text/html": html.frame_html(table), "text/plain": "shape: (1, 2)"}, execution_count=1)])
    path = tmp_path / "retrain.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell("# Retrain\n\n$x^2$"), cell]), path)
    return path


def test_export_is_self_contained_titled_and_opens_with_the_verdict(tmp_path):
    out = html.export_html(_notebook(tmp_path), tmp_path / "report.html", title="recsys_lab run R1",
                           verdict='<section class="rl-verdict rl-held" id="verdict"><p>Not promoted: R1</p></section>')
    page = out.read_text()
    assert re.findall(r"<script[^>]*\bsrc=|<link[^>]*\bhref=[\"']?https?:", page) == []
    assert "cdnjs" not in page and "mathjax" not in page.lower().replace("mathjax_url", "")
    assert "<title>recsys_lab run R1</title>" in page
    body = page[page.index("<main>"):]
    assert body.index("Not promoted: R1") < body.index("Retrain") and "shape: (" not in page
    assert html.replace_verdict(out, '<section class="rl-verdict rl-promoted" id="verdict"><p>Promoted</p></section>')
    again = out.read_text()
    assert "Promoted" in again and "Not promoted: R1" not in again and again.count('id="verdict"') == 1


def test_replace_verdict_leaves_a_page_without_a_card(tmp_path):
    page = tmp_path / "other.html"
    page.write_text("<html><body>plain</body></html>")
    assert not html.replace_verdict(page, "<section>x</section>") and page.read_text().endswith("</html>")


def test_export_of_a_missing_notebook_is_a_run_error(tmp_path):
    from recsys_lab.errors import RunError

    with pytest.raises(RunError, match="cannot render to HTML"):
        html.export_html(tmp_path / "missing.ipynb", tmp_path / "report.html")
