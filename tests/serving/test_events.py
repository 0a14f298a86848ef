"""serving.events: the journal is fsynced and survives a torn write; events are checked with the field named; the
micro-batch folds them into update versions exactly once per run; over HTTP an event for a new user changes that
user's recommendations within update_seconds + 5 s, and events acknowledged before a SIGKILL are all folded."""

from __future__ import annotations

import shutil
import time

import pytest

from recsys_lab.serving.events import EventError, Folder, Journal, check_events
from recsys_lab.serving.saved_run import served_run
from recsys_lab.serving.updates import updates

from ..store._runs import write_run
from ._server import Server


@pytest.fixture()
def runs(saved, tmp_path):
    runs_dir, folder = saved
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    return copy, folder.run_id


def test_the_journal_appends_reads_and_cuts_a_torn_line(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    end = j.append([{"user": 1}, {"user": 2}])
    records, at = j.read(0)
    assert [r["user"] for r in records] == [1, 2] and at == end and all("received" in r for r in records)
    j.close()
    with open(tmp_path / "j.jsonl", "ab") as f:
        f.write(b'{"user": 3')  # killed mid-write: never acknowledged
    j = Journal(tmp_path / "j.jsonl")
    assert j.size() == end and j.read(0)[1] == end
    j.append([{"user": 4}])
    assert [r["user"] for r in j.read(0)[0]] == [1, 2, 4]
    j.close()


@pytest.mark.parametrize("events, field", [
    ([], "events"), ({"user_id": 1}, "events"), ([3], "events[0]"),
    ([{"item_id": 1, "rating": 5}], "events[0].user_id"),
    ([{"user_id": 1, "item_id": 1, "rating": 5}, {"user_id": "x", "item_id": 1, "rating": 5}], "events[1].user_id"),
    ([{"user_id": 1, "item_id": 77, "rating": 5}], "events[0].item_id"),
    ([{"user_id": 1, "item_id": 1, "rating": 6}], "events[0].rating"),
    ([{"user_id": 1, "item_id": 1}], "events[0].rating"),
    ([{"user_id": 1, "item_id": 1, "rating": 5, "timestamp": "yesterday"}], "events[0].timestamp"),
])
def test_bad_events_name_the_field(runs, events, field):
    m = served_run(*runs)
    with pytest.raises(EventError) as err:
        check_events(m, events)
    assert err.value.field == field


def test_events_are_normalised(runs):
    m = served_run(*runs)
    out = check_events(m, [{"user_id": "42", "item_id": 3, "rating": 4, "timestamp": 1_600_000_000},
                           {"user_id": 1, "item_id": "2", "rating": 5, "timestamp": "2020-09-13T12:26:40Z"}])
    assert out[0] == {"user": 42, "item": 3, "weight": 4.0, "ts": "2020-09-13T12:26:40+00:00"}
    assert out[1]["ts"] == out[0]["ts"] and out[1]["item"] == 2


def test_the_folder_folds_each_line_once_per_run(runs):
    runs_dir, run_id = runs
    m = served_run(runs_dir, run_id)
    f = Folder(runs_dir, lambda: m, 3600)
    f.journal.append(check_events(m, [{"user_id": 42, "item_id": 3, "rating": 5}]))
    man = f.fold()
    assert man["rows_read"] == 1 and man["new_users"] == 1 and f.fold() is None
    f.journal.append(check_events(m, [{"user_id": 42, "item_id": 4, "rating": 5}]))
    f.journal.close()
    again = Folder(runs_dir, lambda: m, 3600)  # a restart: what is folded is read from the versions
    assert again.offset(run_id) > 0 and again.offset(run_id) < again.journal.size()
    assert again.fold()["rows_read"] == 1 and again.fold() is None
    assert updates(runs_dir, run=run_id).height == 2
    assert again.lag()["events"] == 1 and again.lag()["p99"] >= 0
    again.journal.close()


@pytest.mark.slow
def test_an_event_for_a_new_user_is_served_within_update_seconds(tmp_path):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, tmp_path / "wh")
    s = Server(runs_dir, "serve.update_seconds=2")
    try:
        before = s.client.get("/recommendations/4242").json()
        assert before["path"] == "popularity"
        t0 = time.monotonic()
        assert s.client.post("/events", json={"events": [{"user_id": 4242, "item_id": 5, "rating": 5}]}
                             ).status_code == 202
        while s.client.get("/recommendations/4242").json()["path"] != "update":
            assert time.monotonic() - t0 < 2 + 5, "not served within update_seconds + 5 s"
            time.sleep(0.1)
        after = s.client.get("/recommendations/4242").json()
        assert 5 not in [r["item_id"] for r in after["items"]]
        lag = s.client.get("/health").json()["lag_s"]
        assert lag["events"] == 1 and lag["p99"] <= 2 + 5
    finally:
        s.stop()


@pytest.mark.slow
def test_acknowledged_events_survive_a_sigkill(tmp_path):
    runs_dir = tmp_path / "runs"
    write_run(runs_dir, tmp_path / "wh")
    s = Server(runs_dir, "serve.update_seconds=3600")  # nothing is folded before the kill
    users = list(range(5000, 5020))
    try:
        for u in users:
            r = s.client.post("/events", json={"events": [{"user_id": u, "item_id": 1 + u % 5, "rating": 5}]})
            assert r.status_code == 202
        s.kill()  # right after the last acknowledgement
    finally:
        s.stop()
    s = Server(runs_dir, "serve.update_seconds=1")
    try:
        deadline = time.monotonic() + 30
        while s.client.get("/health").json()["events_folded"] < len(users):
            assert time.monotonic() < deadline, s.client.get("/health").json()
            time.sleep(0.2)
        assert s.client.get("/health").json()["events_folded"] == len(users)
        assert {s.client.get(f"/recommendations/{u}").json()["path"] for u in users} == {"update"}
    finally:
        s.stop()
