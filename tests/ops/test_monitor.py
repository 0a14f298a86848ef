"""The monitoring page ``runs/index.html`` and ``registry.history()``: built from planted run folders, opened in
headless Chromium (Debian's ``chromium``) and checked for the series, the verdict texts and no request leaving the
machine."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recsys_lab.cli.main import main
from recsys_lab.config import Config
from recsys_lab.ops.monitor import page_path, render, write
from recsys_lab.runs.registry import history
from recsys_lab.store.folder import PRODUCTION

from ..runs.conftest import plant_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")


def _metrics(ndcg: float, *, k: int = 10, drift: float | None = None) -> dict:
    m = {"eval.k": k, f"ndcg@{k}": ndcg, f"ndcg@{k}.ci_low": ndcg - 0.02, f"ndcg@{k}.ci_high": ndcg + 0.02,
         f"recall@{k}": ndcg / 2, f"recall@{k}.ci_low": ndcg / 2 - 0.01, f"recall@{k}.ci_high": ndcg / 2 + 0.01,
         f"fairness.user.gender.ndcg@{k}.F": ndcg - 0.01, f"fairness.user.gender.ndcg@{k}.F.ci_low": ndcg - 0.04,
         f"fairness.user.gender.ndcg@{k}.F.ci_high": ndcg + 0.02, f"fairness.user.gender.ndcg@{k}.F.n_users": 200,
         f"fairness.user.gender.ndcg@{k}.M": ndcg + 0.01, f"fairness.user.gender.ndcg@{k}.gap": 0.02}
    if drift is not None:
        m["drift.psi.item_popularity"] = drift
    return m


def _config(until: str, max_minutes: float = 0.0) -> dict:
    return Config().replace({"data.until": until, "run.max_minutes": max_minutes}).to_dict()


def plant_history(runs: Path) -> list[Path]:
    """Five runs by cut-off: promoted, candidate, gate refused (over its 1-minute budget), failed, promoted (with
    drift); a sixth with a damaged metrics file. Each run but the failed one has a report."""
    plan = [("20260101T000000Z-aaaaaa", "1998-01-01", {"promoted": True}, _metrics(0.18)),
            ("20260101T000100Z-bbbbbb", "1998-01-08", {}, _metrics(0.19, drift=0.05)),
            ("20260101T000200Z-cccccc", "1998-01-15", {"gate": {"passed": False, "reason": "ndcg@10 regressed"},
                                                       "timings": {"total": 95.0}}, _metrics(0.12, drift=0.3)),
            ("20260101T000300Z-dddddd", "1998-01-22", {"status": "failed", "reason": "DataValidationError: empty"},
             "{}"),
            ("20260101T000400Z-eeeeee", "1998-01-29", {"promoted": True}, _metrics(0.21, drift=0.08))]
    dirs = []
    for i, (name, until, extra, metrics) in enumerate(plan):
        budget = 1.0 if name.endswith("cccccc") else 0.0
        d = plant_run(runs, name, metrics=metrics, config=_config(until, budget), started_at=f"2026-01-01T00:0{i}:00+00:00",
                      backfill={"until": until, "batch": plan[0][0]}, **extra)
        if not name.endswith("dddddd"):
            (d / "report.html").write_text("<html><title>report</title></html>")
        dirs.append(d)
    dirs.append(plant_run(runs, "20260101T000500Z-ffffff", metrics="{not json"))
    (runs / PRODUCTION).write_text("20260101T000400Z-eeeeee\n")
    return dirs


def test_history_one_row_per_run_in_cutoff_order(tmp_path):
    runs = tmp_path / "runs"
    plant_history(runs)
    h = history(runs)
    assert h.height == 6
    good = h.filter(h["note"].is_null())
    assert good["until"].to_list() == ["1998-01-01", "1998-01-08", "1998-01-15", "1998-01-22", "1998-01-29"]
    assert good["production"].to_list() == [False, False, False, False, True]
    assert good["gate_passed"].to_list()[2] is False and good["backfill"].all()
    assert good["ndcg@k"].to_list()[0] == pytest.approx(0.18)
    assert good["ndcg@k.ci_high"].to_list()[4] == pytest.approx(0.23)
    assert good["fairness.user.gender.ndcg@k.F.ci_low"].to_list()[0] == pytest.approx(0.14)
    assert "fairness.user.gender.ndcg@k.F.n_users" not in h.columns and "fairness.user.gender.ndcg@k.gap" not in h.columns
    assert good["drift.psi.item_popularity"].to_list()[1:3] == pytest.approx([0.05, 0.3])
    assert good["within_sla"].to_list()[2] is False and good["sla_s"].to_list()[2] == 60.0
    assert good["sla_s"].to_list()[0] == 26 * 3600  # alerts.sla when there is no run.max_minutes
    bad = h.filter(h["note"].is_not_null())
    assert bad["run_id"].to_list() == ["20260101T000500Z-ffffff"] and "metrics" in bad["note"][0]


def test_history_reads_each_runs_own_k_and_survives_damaged_manifests(tmp_path):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa", metrics=_metrics(0.3, k=20), config=_config("1998-01-01"))
    d = runs / "20260101T000100Z-bbbbbb"
    d.mkdir(parents=True)
    (d / "run.json").write_text("[1, 2]")  # a JSON array: not a manifest
    h = history(runs)
    assert h.height == 2
    row = h.filter(h["run_id"] == "20260101T000000Z-aaaaaa").row(0, named=True)
    assert row["k"] == 20 and row["ndcg@k"] == pytest.approx(0.3)
    assert h.filter(h["run_id"] == "20260101T000100Z-bbbbbb")["note"][0].startswith("skipped:")
    assert history(tmp_path / "none").height == 0


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "poster", "data") and v]


def test_page_is_self_contained_with_relative_report_links(tmp_path):
    runs = tmp_path / "runs"
    plant_history(runs)
    text = write(runs).read_text()
    parser = _Links()
    parser.feed(text)
    assert not {"script", "link", "iframe", "img", "object"} & parser.tags
    leaving = [u for u in parser.urls if re.match(r"[a-z][a-z0-9+.-]*:", u, re.IGNORECASE) and not u.startswith(("data:",
                                                                                                          "file:"))]
    assert leaving == []
    assert "20260101T000000Z-aaaaaa/report.html" in parser.urls
    assert "20260101T000300Z-dddddd (no report)" in text  # the failed run has no report: no dead link
    assert "url(" not in text and "@import" not in text
    assert str(tmp_path) not in text  # no absolute path on the page


def test_empty_runs_directory_gives_a_page_that_says_so(tmp_path):
    path = write(tmp_path / "runs")
    assert path == page_path(tmp_path / "runs") and "No run yet" in path.read_text()


def test_runs_monitor_command_writes_the_page(tmp_path, capsys):
    runs = tmp_path / "runs"
    plant_history(runs)
    assert main(["runs", "monitor", "--runs-dir", str(runs)]) == 0
    assert "monitoring page:" in capsys.readouterr().out and (runs / "index.html").is_file()


def _chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--no-first-run", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", *extra, url],
                          check=False, capture_output=True, text=True, timeout=120)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _page_requests(netlog: Path) -> list[str]:
    """URLs the page asked for that are not on the machine (file:, data:), from Chromium's network log: requests the
    page initiates carry its origin (``null`` for file://); the browser's own (update checks, clock) ``not an
    origin``."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # cut short: close the event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    params = [e.get("params") or {} for e in log["events"] if e["type"] == start]
    return [p["url"] for p in params if "url" in p and p.get("initiator") != "not an origin"
            and not p["url"].startswith(("file:", "data:"))]


def _open_offline(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """The DOM of ``page`` in headless Chromium whose every request goes to a proxy on a closed local port, and the
    page's requests that would leave the machine."""
    netlog = tmp_path / f"{page.stem}.net.json"
    done = _chromium(page.as_uri(), tmp_path, f"--proxy-server=http://127.0.0.1:{_unused_port()}",
                     "--proxy-bypass-list=<-loopback>", f"--log-net-log={netlog}", "--dump-dom")
    return done.stdout, _page_requests(netlog)


@needs_chromium
def test_page_in_headless_chromium_shows_series_and_verdicts_and_asks_nothing_of_the_network(tmp_path):
    runs = tmp_path / "runs"
    plant_history(runs)
    page = write(runs)
    dom, leaving = _open_offline(page, tmp_path)
    assert "Production is run 20260101T000400Z-eeeeee" in dom
    assert "gate refused: ndcg@10 regressed" in dom and "gate passed" in dom
    assert "failed: DataValidationError: empty" in dom
    assert "1 over the SLA" in dom and "over the SLA 1m" in dom
    assert "ndcg@10 over time (95 % interval bands)" in dom and "recall@10 over time" in dom
    assert "NDCG@10 by gender over time" in dom and "Drift PSI" in dom and "major (0.25)" in dom
    assert dom.count('class="band"') >= 4  # production and candidates, NDCG and recall
    assert "production (2)" in dom and "candidates (2)" in dom  # the failed run has no point
    assert leaving == []
    # the check sees a request when there is one: the same page with one remote image
    bad = page.with_name("remote.html")
    bad.write_text(page.read_text().replace("<body>", '<body><img src="http://example.invalid/x.png">'))
    assert _open_offline(bad, tmp_path)[1] == ["http://example.invalid/x.png"]


@needs_chromium
def test_the_page_reads_the_same_after_a_damaged_run_appears(tmp_path):
    runs = tmp_path / "runs"
    plant_history(runs)
    (runs / "20260101T000000Z-aaaaaa" / "run.json").write_text("{broken")
    page = write(runs)
    dom = _chromium(page.as_uri(), tmp_path, "--dump-dom").stdout
    assert "2 unreadable (skipped)" in dom and "Production is run 20260101T000400Z-eeeeee" in dom


def test_render_escapes_run_text(tmp_path):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa", metrics=_metrics(0.2), config=_config("1998-01-01"),
              status="failed", reason="<script>alert(1)</script>")
    text = render(history(runs))
    assert "<script>" not in text and "&lt;script&gt;" in text
    json.dumps(text)  # plain text, no bytes


def test_a_page_that_cannot_be_written_is_a_warning_not_a_failed_run(tmp_path, capsys):
    from recsys_lab.cli.ops import monitor_after_run

    runs = tmp_path / "runs"
    plant_history(runs)
    (runs / "index.html").mkdir()  # the page's place is taken by a folder
    monitor_after_run(runs)
    assert "warning: monitoring page not written" in capsys.readouterr().err


@pytest.mark.slow
def test_every_retrain_rewrites_the_page(tmp_path, monkeypatch):
    from .conftest import make_project

    project = make_project(tmp_path)
    monkeypatch.chdir(project)
    assert main(["retrain"]) == 0
    (run,) = history("runs")["run_id"]
    page = (project / "runs" / "index.html").read_text()
    assert f'href="{run}/report.html"' in page and "candidates (1)" in page
