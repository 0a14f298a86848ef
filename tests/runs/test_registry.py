"""The registry on planted run folders: references are never paths, gc deletes only what it listed, damaged files
are typed errors."""

from __future__ import annotations

import json
import os

import pytest

from recsys_lab.errors import RunError
from recsys_lab.runs import registry, retention

from .conftest import plant_run


@pytest.fixture()
def victim(tmp_path):
    """A folder next to runs/ holding a file: gc must never touch it."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "precious.txt").write_text("keep me")
    return v


def _old_and_new(runs, n_old=3):
    for day in range(1, n_old + 1):
        plant_run(runs, f"2026010{day}T000000Z-aaaaa{day}")
    return plant_run(runs, "20260201T000000Z-ffffff")


@pytest.mark.parametrize("planted_id", ["", "../victim", "ABSOLUTE", ".", "*"])
def test_gc_deletes_the_folder_it_listed_never_the_run_id_inside(tmp_path, victim, planted_id):
    """issue 17: `"run_id": ""` deleted runs/ itself, "../victim" or an absolute path a folder outside runs/."""
    runs = tmp_path / "runs"
    newest = _old_and_new(runs)
    run_id = str(victim) if planted_id == "ABSOLUTE" else planted_id
    bad = plant_run(runs, "20251231T000000Z-bbbbbb", run_id=run_id)
    removed = retention.gc(runs, keep=1)
    assert sorted(removed) == sorted([bad.name] + [f"2026010{d}T000000Z-aaaaa{d}" for d in (1, 2, 3)])
    assert (victim / "precious.txt").read_text() == "keep me"
    assert runs.is_dir() and [p.name for p in runs.iterdir()] == [newest.name]


def test_gc_dry_run_lists_what_would_go_and_deletes_nothing(tmp_path):
    runs = tmp_path / "runs"
    _old_and_new(runs)
    before = sorted(p.name for p in runs.iterdir())
    would = retention.gc(runs, keep=2, dry_run=True)
    assert sorted(p.name for p in runs.iterdir()) == before
    assert retention.gc(runs, keep=2) == would == ["20260102T000000Z-aaaaa2", "20260101T000000Z-aaaaa1"]


def test_gc_keeps_production_named_by_a_unique_prefix(tmp_path):
    runs = tmp_path / "runs"
    _old_and_new(runs)
    (runs / "PRODUCTION").write_text("20260101\n")
    assert sorted(retention.gc(runs, keep=0)) == ["20260102T000000Z-aaaaa2", "20260103T000000Z-aaaaa3",
                                                 "20260201T000000Z-ffffff"]
    assert [p.name for p in runs.iterdir() if p.is_dir()] == ["20260101T000000Z-aaaaa1"]


def test_gc_refuses_when_production_names_no_single_run(tmp_path, victim):
    runs = tmp_path / "runs"
    _old_and_new(runs)
    for pointer in ("2026010", "../victim"):
        (runs / "PRODUCTION").write_text(pointer + "\n")
        with pytest.raises(RunError, match="PRODUCTION: .*(names no single run|is not a run reference)"):
            retention.gc(runs, keep=0)
    assert len([p for p in runs.iterdir() if p.is_dir()]) == 4


def test_gc_never_follows_a_symlinked_run_folder(tmp_path):
    runs = tmp_path / "runs"
    newest = _old_and_new(runs, n_old=1)
    outside = plant_run(tmp_path / "elsewhere", "20250101T000000Z-cccccc")
    (runs / outside.name).symlink_to(outside, target_is_directory=True)
    removed = retention.gc(runs, keep=1)
    assert removed == ["20260101T000000Z-aaaaa1"]
    assert (outside / "run.json").is_file() and (runs / outside.name).is_symlink() and newest.is_dir()


@pytest.mark.parametrize("ref", ["../victim", "..", "/tmp", "a/b", "", ".retrain.lock"])
def test_a_reference_is_never_a_path(tmp_path, victim, ref):
    runs = tmp_path / "runs"
    _old_and_new(runs)
    plant_run(tmp_path, "victim2")
    with pytest.raises(RunError, match="is not a run reference"):
        registry.resolve(runs, ref)


def test_glob_characters_in_a_reference_are_literal(tmp_path):
    """`resolve(runs, "*")` resolved to some run (the reference went to glob)."""
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa")
    for ref in ("*", "2026*", "2026010[1]", "?0260101"):
        with pytest.raises(RunError, match="no runs match"):
            registry.resolve(runs, ref)
    assert registry.resolve(runs, "20260101").name == "20260101T000000Z-aaaaaa"


def test_production_pointing_outside_is_refused(tmp_path, victim):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa")
    plant_run(tmp_path, "victim3")
    (runs / "PRODUCTION").write_text("../victim3\n")
    with pytest.raises(RunError, match="is not a run reference"):
        registry.resolve(runs, "production")


@pytest.mark.parametrize("text, message", [("{not json", "is not valid JSON"), ("[1, 2]", "not a JSON object")])
def test_show_and_compare_on_damaged_metrics_are_typed_errors(tmp_path, text, message):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa", metrics=text)
    plant_run(runs, "20260102T000000Z-bbbbbb")
    with pytest.raises(RunError, match=message):
        registry.show(runs, "20260101")
    with pytest.raises(RunError, match=message):
        registry.compare(runs, "20260101", "20260102")


def test_show_reads_a_manifest_without_git_and_refuses_one_that_is_not_an_object(tmp_path):
    runs = tmp_path / "runs"
    d = plant_run(runs, "20260101T000000Z-aaaaaa")
    m = json.loads((d / "run.json").read_text())
    del m["git"]
    (d / "run.json").write_text(json.dumps(m))
    assert "git" not in registry.show(runs, "20260101")["manifest"]
    (d / "run.json").write_text("[]")
    with pytest.raises(RunError, match="not a JSON object"):
        registry.show(runs, "20260101")


def _old(path, seconds=120):
    """``path`` (created empty when missing) last modified ``seconds`` ago."""
    path.touch()
    t = path.stat().st_mtime - seconds
    os.utime(path, (t, t))
    return path


def test_the_next_start_removes_stale_temp_files_of_killed_writes_and_nothing_else(tmp_path, caplog):
    """issue 17: temp files of killed atomic writes were never cleaned. Only our temp names, older than a minute,
    regular files, inside the runs directory; never a live retrain's run folder."""
    from recsys_lab._fs import is_temp_name, temp_file_for
    from recsys_lab.cli.main import main
    from recsys_lab.runs.lock import RetrainLock

    runs = tmp_path / "runs"
    done = plant_run(runs, "20260101T000000Z-aaaaaa")
    live = plant_run(runs, "20260102T000000Z-bbbbbb", status="running")
    (done / "artifacts").mkdir()
    stale = [_old(temp_file_for(p)) for p in (runs / "PRODUCTION", done / "run.json",
                                              done / "artifacts" / "embeddings.npz")]
    assert all(is_temp_name(p.name) for p in stale)
    fresh = temp_file_for(done / "metrics.json")  # a write in progress
    kept = [_old(p) for p in (temp_file_for(live / "run.json"),  # the live retrain's folder
                              done / ".notes.tmp", done / "x.abcdefgh.tmp", done / ".a.ABCDEFGH.tmp",
                              tmp_path / ".outside.abcdefgh.tmp")]
    link = runs / ".PRODUCTION.zzzzzzzz.tmp"
    link.symlink_to(tmp_path / ".outside.abcdefgh.tmp")
    os.utime(link, (1e9, 1e9), follow_symlinks=False)  # an old symlink with our name: not ours to remove
    with RetrainLock(runs) as lock:  # another process would hold it; its run folder is skipped
        lock.set_run(live.name)
        assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and all(p.exists() for p in kept) and link.is_symlink()
    assert "left by a killed write" in caplog.text
    # once the retrain is gone, its folder is cleaned too
    assert main(["runs", "show", "20260102", "--runs-dir", str(runs)]) == 0
    assert not kept[0].exists()


def test_a_killed_atomic_write_leaves_a_temp_file_the_cleanup_recognises(tmp_path, monkeypatch):
    from recsys_lab import _fs

    seen = []

    def killed(tmp):
        seen.append(tmp)
        raise KeyboardInterrupt  # the finally clause removes it; a kill -9 would not
    with pytest.raises(KeyboardInterrupt):
        _fs.atomic_write_with(tmp_path / "run.json", killed)
    assert _fs.is_temp_name(seen[0].name) and seen[0].parent == tmp_path
