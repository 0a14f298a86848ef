"""serving.app over real HTTP: a ``recsys-lab serve`` subprocess on a free 127.0.0.1 port answers every endpoint,
refuses bad input with the field named, follows a promotion under a request loop with no failed request, refuses a
damaged production run, protects ``POST /events`` with a token; the comparison page is driven in headless Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from recsys_lab.runs.production import point
from recsys_lab.store.folder import RunFolder

from ..store._runs import write_run
from ._server import Server, free_port

SECOND = "20200102T000000Z-bbbbbb"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    first = write_run(root / "runs", root / "wh")
    write_run(root / "runs", root / "wh", run_id=SECOND, production=False)
    (first.path / "report.html").write_text("<html>report of the first run</html>")
    return root / "runs", first.run_id


@pytest.fixture(scope="module")
def server(runs):
    s = Server(runs[0], "serve.update_seconds=1", "serve.poll_seconds=0.2", "serve.max_body_bytes=2048")
    yield s
    s.stop()


def test_recommendations_for_known_cold_and_unknown_users(server, runs):
    r = server.client.get("/recommendations/1", params={"k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["run_id"] == runs[1] and body["path"] == "model" and len(body["items"]) == 3
    assert set(body["items"][0]) == {"rank", "item_id", "title", "score"} and body["note"] is None
    cold = server.client.get("/recommendations/8", params={"k": 2}).json()
    assert cold["path"] == "fold-in"
    unknown = server.client.get("/recommendations/999").json()
    assert unknown["path"] == "popularity" and "unknown user_id 999" in unknown["note"]
    assert len(unknown["items"]) == 6


@pytest.mark.parametrize("url, loc", [("/recommendations/1?k=0", ["query", "k"]),
                                      ("/recommendations/1?k=100000", ["query", "k"]),
                                      ("/recommendations/1?k=ten", ["query", "k"]),
                                      ("/recommendations/abc", ["path", "user_id"]),
                                      ("/similar/77", ["path", "item_id"]),
                                      ("/similar/1?k=-1", ["query", "k"])])
def test_bad_get_input_is_a_422_naming_the_field(server, url, loc):
    r = server.client.get(url)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == loc


def test_onboarding_and_its_bad_input(server):
    ok = server.client.post("/recommendations", json={"items": [1, 2], "k": 2}).json()
    assert ok["path"] == "fold-in" and ok["picks"] == [1, 2]
    assert not {1, 2} & {row["item_id"] for row in ok["items"]}
    for body, loc in [({"items": [1, 77]}, ["body", "items", 1]), ({"items": []}, ["body", "items"]),
                      ({"items": [1], "k": 0}, ["body", "k"]), ({"items": [1], "k": True}, ["body", "k"]),
                      ([1, 2], ["body"])]:
        r = server.client.post("/recommendations", json=body)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc, (body, r.text)
    bad = server.client.post("/recommendations", content=b'{"items": [1,', headers={"content-type": "application/json"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body"] and "JSON" in bad.text
    big = server.client.post("/recommendations", json={"items": [1] * 2000})
    assert big.status_code == 413


def test_similar_health_metrics(server, runs):
    sim = server.client.get("/similar/1", params={"k": 2}).json()
    assert sim["path"] == "exact" and len(sim["items"]) == 2 and 1 not in [r["item_id"] for r in sim["items"]]
    health = server.client.get("/health").json()
    assert health["status"] == "ok" and health["run_id"] == runs[1] and health["items"] == 6
    assert {"loaded_at", "update_version", "lag_s", "refused"} <= set(health)
    assert set(health["lag_s"]) == {"p50", "p99", "events"}
    text = server.client.get("/metrics").text
    assert 'recsys_requests_total{endpoint="/recommendations/{user_id}",status="200"}' in text
    assert "recsys_request_seconds_bucket" in text and "recsys_errors_total" in text
    assert "recsys_events_folded" in text


def test_page_api_and_reports(server, runs):
    assert "Compare two runs" in server.client.get("/").text
    choice = server.client.get("/api/runs").json()
    assert choice["b"] == runs[1] and choice["a"] == SECOND
    assert server.client.get("/api/items", params={"q": "b"}).json() == [{"item_id": 2, "title": "B"}]
    assert server.client.get("/api/personas").json()
    cmp = server.client.get("/api/compare", params={"a": SECOND, "b": "production", "user": "1", "k": 3}).json()
    assert cmp["a"]["run_id"] == SECOND and cmp["b"]["run_id"] == runs[1]
    assert 0 <= cmp["overlap"] <= 1 and cmp["history"] and {r["move"] for r in cmp["rows"]} <= {
        "new", "dropped", "=", *(f"up {n}" for n in range(1, 4)), *(f"down {n}" for n in range(1, 4))}
    both = server.client.get("/api/compare", params={"a": runs[1], "b": runs[1], "items": "1,2", "k": 3}).json()
    assert both["overlap"] == 1 and {r["move"] for r in both["rows"]} == {"="}
    assert server.client.get(cmp["b"]["report"]).text == "<html>report of the first run</html>"
    assert server.client.get(f"/runs/{SECOND}/report.html").status_code == 404  # no report written
    for ref in ("..", "..%2F..%2Fetc", ".events", "PRODUCTION"):
        assert server.client.get(f"/runs/{ref}/report.html").status_code == 404
    r = server.client.get("/api/compare", params={"a": "../x", "b": "production", "user": "1"})
    assert r.status_code == 422


def test_a_promotion_swaps_under_load_without_a_failed_request(server, runs):
    failures, answers, stop = [], [], threading.Event()

    def loop() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            while not stop.is_set():
                r = c.get("/recommendations/1", params={"k": 3})
                (answers if r.status_code == 200 else failures).append(r.json().get("run_id") or r.text)

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        point(runs[0], SECOND)
        deadline = time.monotonic() + 30
        while server.client.get("/health").json()["run_id"] != SECOND and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join()
        point(runs[0], runs[1])
    assert failures == []
    assert runs[1] in answers and answers[-1] == SECOND
    deadline = time.monotonic() + 30
    while server.client.get("/health").json()["run_id"] != runs[1] and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_damaged_production_run_is_refused_and_the_old_one_keeps_serving(server, runs):
    bad = "20200103T000000Z-cccccc"
    shutil.copytree(runs[0] / SECOND, runs[0] / bad)
    RunFolder(runs[0] / bad).embeddings.write_bytes(b"not an npz")
    try:
        point(runs[0], bad)
        deadline = time.monotonic() + 30
        while server.client.get("/health").json()["refused"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
        health = server.client.get("/health").json()
        assert health["run_id"] == runs[1] and health["status"] == "degraded"
        assert health["refused"]["run_id"] == bad and "embeddings.npz" in health["refused"]["reason"]
        assert server.client.get("/recommendations/1").status_code == 200
        assert "refused" in server.log.read_text()
    finally:
        point(runs[0], runs[1])
        shutil.rmtree(runs[0] / bad)


def test_events_need_the_token_when_one_is_set(runs, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs[0], copy, ignore=shutil.ignore_patterns(".events"))
    s = Server(copy, "serve.update_seconds=3600", env={"RECSYS_LAB_SERVE_TOKEN": "s3cret"})
    try:
        event = {"events": [{"user_id": 1, "item_id": 2, "rating": 5}]}
        assert s.client.post("/events", json=event).status_code == 401
        assert s.client.post("/events", json=event, headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = s.client.post("/events", json=event, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 202 and ok.json()["accepted"] == 1
    finally:
        s.stop()


def test_the_service_binds_127_0_0_1_unless_told(runs):
    from recsys_lab.config import ServeConfig

    assert ServeConfig().host == "127.0.0.1"


def _cdp(ws, method: str, **params):
    """One DevTools command over the page's websocket; its result (events in between are skipped)."""
    _cdp.n = getattr(_cdp, "n", 0) + 1
    ws.send(json.dumps({"id": _cdp.n, "method": method, "params": params}))
    while True:
        msg = json.loads(ws.recv())
        if msg.get("id") == _cdp.n:
            assert "error" not in msg, msg
            return msg["result"]


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_the_comparison_page_in_headless_chromium(server, runs, tmp_path):
    websocket = pytest.importorskip("websocket")
    port = free_port()
    browser = subprocess.Popen(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-background-networking", "--no-first-run", f"--user-data-dir={tmp_path}",
                                f"--remote-debugging-port={port}", "--window-size=1200,900", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                tabs = httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json()
                page = next(t for t in tabs if t.get("type") == "page")
                break
            except (httpx.HTTPError, StopIteration, ValueError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        _cdp(ws, "Page.enable")
        _cdp(ws, "Page.navigate", url=server.url + "/")

        def js(expr: str):
            return _cdp(ws, "Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

        def wait(expr: str) -> None:
            deadline = time.monotonic() + 30
            while not js(expr):
                assert time.monotonic() < deadline, f"timed out waiting for {expr}"
                time.sleep(0.2)

        wait("document.getElementById('run-b') && document.getElementById('run-b').options.length > 0")
        _cdp(ws, "Runtime.evaluate", expression="document.getElementById('user').focus()")
        _cdp(ws, "Input.insertText", text="1")
        wait("document.querySelectorAll('#list-a tr').length > 0 && document.querySelectorAll('#list-b tr').length > 0")
        a = js("[...document.querySelectorAll('#list-a tr')].map(r => r.innerText)")
        b = js("[...document.querySelectorAll('#list-b tr')].map(r => r.innerText)")
        assert len(b) == 3 and all(line.split("\t")[1] in "ABCDEF" for line in b)
        assert js("document.getElementById('title-b').innerText").startswith("B: " + runs[1])
        assert "overlap@10" in js("document.getElementById('summary').innerText") and a
        shot = _cdp(ws, "Page.captureScreenshot", format="png")["data"]
        assert base64.b64decode(shot)[:4] == b"\x89PNG"
        ws.close()
    finally:
        browser.terminate()
        browser.wait(10)


def test_a_preloaded_run_answers_as_the_snapshot_does(runs, tmp_path):
    """ServedRun.preload (what the service uses) keeps rows and titles in memory: same answers as the SQL path."""
    from recsys_lab.serving import saved_run
    from recsys_lab.serving.recommend import recommend
    from recsys_lab.store.artifacts import load_run

    copy = tmp_path / "runs"
    shutil.copytree(runs[0], copy, ignore=shutil.ignore_patterns(".events", "updates"))
    path = copy / runs[1]
    plain = saved_run.ServedRun(load_run(path))
    warm = saved_run.ServedRun(load_run(path)).preload()
    for user in (1, 4, 8, 99):
        assert plain.user_rows(user).sort("item_id").equals(warm.user_rows(user).sort("item_id"))
    assert warm.user_rows("x").height == 0
    ids = plain.item_ids[[4, 0, 2]]
    assert plain.titles(ids).sort("item_id").equals(warm.titles(ids).sort("item_id"))
    answers = {}
    for m in (plain, warm):
        saved_run._CACHE[path] = m
        answers[id(m)] = [recommend(copy, u, run=runs[1], k=4) for u in (1, 4, 8, 99)]
    saved_run._CACHE.pop(path)
    assert all(a.equals(b) for a, b in zip(*answers.values()))
