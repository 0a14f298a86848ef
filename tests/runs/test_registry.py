"""The registry on planted run folders: references are never paths, gc deletes only what it listed, damaged files
are typed errors."""

from __future__ import annotations

import json

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
        with pytest.raises(RunError, match="names no single run"):
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
