"""The command line in-process (``main([...])``) on planted run folders: one mapping of errors to exit codes, every
recsys_lab error on one line, run references that are never paths, gc that deletes only what it lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recsys_lab.cli import exits
from recsys_lab.cli.main import app, exit_code, main
from recsys_lab.errors import ConfigError, DataError, RunError, RunFailedError
from recsys_lab.runs.lock import LockHeldError

from ..runs.conftest import plant_run

CLI = Path(__file__).resolve().parents[2] / "recsys_lab" / "cli"


def run_cli(capsys, *args) -> tuple[int, str, list[str]]:
    """``recsys-lab ARGS`` in this process: exit code, stdout, stderr lines."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


@pytest.mark.parametrize("exc, command, code", [
    (LockHeldError(Path("runs/.retrain.lock"), {}, 0.0), "retrain", exits.EXIT_LOCKED),
    (RunFailedError("runs/x", "disk full"), "retrain", exits.EXIT_FAILED),
    (OSError(28, "No space left on device"), "retrain", exits.EXIT_FAILED),
    (ConfigError("bad", parameter="model.epochs"), "retrain", exits.EXIT_USAGE),
    (ConfigError("bad"), "ingest", exits.EXIT_USAGE),
    (DataError("bad file"), "ingest", exits.EXIT_FAILED),
    (DataError("bad file"), "bench", exits.EXIT_USAGE),
    (RunError("no runs match"), "runs", exits.EXIT_USAGE),
    (exits.UsageError("give exactly one"), "recommend", exits.EXIT_USAGE),
])
def test_one_mapping_from_errors_to_exit_codes(exc, command, code):
    assert exit_code(exc, command) == code


def test_no_command_maps_errors_itself():
    """The CLI mapped errors to exit codes four ways (_fail, _guard, _noted, inline); now only main does."""
    for path in CLI.glob("*.py"):
        if path.name == "main.py":
            continue
        src = path.read_text()
        assert "except RecsysLabError" not in src and "_fail(" not in src and "_guard(" not in src, path.name


def test_the_entry_point_is_cli_main():
    import tomllib

    scripts = tomllib.loads((CLI.parents[1] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"recsys-lab": "recsys_lab.cli.main:main"}
    import typer

    names = set(typer.main.get_command(app).commands)
    assert names == {"retrain", "config", "runs", "recommend", "update", "ingest", "init", "lab", "bench",
                     "generate", "study", "similar", "personas", "backfill", "serve", "score", "sweep"}


def test_a_param_without_value_is_one_line_exit_2(capsys):
    code, _, err = run_cli(capsys, "config", "-p", "model.epochs")
    assert code == 2 and err == ["error: -p takes NAME VALUE, got only 'model.epochs'"]


@pytest.mark.parametrize("text, message", [("{not json", "is not valid JSON"), ("[1, 2]", "not a JSON object")])
def test_runs_show_on_damaged_metrics_is_one_line_exit_2(tmp_path, capsys, text, message):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa", metrics=text)
    code, _, err = run_cli(capsys, "runs", "show", "20260101", "--runs-dir", runs)
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert "metrics.json" in err[0]


def test_runs_show_reads_a_manifest_without_git(tmp_path, capsys):
    runs = tmp_path / "runs"
    d = plant_run(runs, "20260101T000000Z-aaaaaa")
    m = json.loads((d / "run.json").read_text())
    del m["git"], m["config"]
    (d / "run.json").write_text(json.dumps(m))
    code, out, err = run_cli(capsys, "runs", "show", "20260101", "--runs-dir", runs)
    assert code == 0, err
    assert "run 20260101T000000Z-aaaaaa: succeeded" in out and "git None; data snapshot ssss" in out
    assert "ndcg@10" in out and "config:\n(not recorded)" in out


@pytest.mark.parametrize("args", [
    ("runs", "show", "../victim"), ("runs", "show", "/etc"), ("runs", "compare", "a/b", "20260101"),
    ("runs", "promote", ".."), ("similar", "--item", "1", "--run", "../victim"),
    ("retrain", "--like", "../victim"),
])
def test_a_run_reference_that_is_a_path_is_refused_in_one_line(tmp_path, capsys, args):
    runs = tmp_path / "runs"
    plant_run(runs, "20260101T000000Z-aaaaaa")
    plant_run(tmp_path, "victim")
    code, _, err = run_cli(capsys, *args, "--runs-dir", runs)
    assert code == 2 and len(err) == 1 and "is not a run reference" in err[0], err
    assert not (runs / "PRODUCTION").exists()


def test_runs_gc_deletes_only_what_it_lists(tmp_path, capsys):
    """issue 17 through the CLI: planted run_ids "", "../victim" and an absolute path, and a symlinked run."""
    runs = tmp_path / "runs"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    keep = plant_run(runs, "20260201T000000Z-ffffff")
    planted = [plant_run(runs, f"2026010{i}T000000Z-aaaaa{i}", run_id=rid)
               for i, rid in enumerate(("", "../victim", str(victim)), start=1)]
    outside = plant_run(tmp_path / "elsewhere", "20250101T000000Z-cccccc")
    (runs / outside.name).symlink_to(outside, target_is_directory=True)
    code, out, err = run_cli(capsys, "runs", "gc", "--keep", "1", "--dry-run", "--runs-dir", runs)
    assert code == 0, err
    assert out.splitlines()[0] == "would remove 3 run(s)" and all(p.exists() for p in planted)
    code, out, err = run_cli(capsys, "runs", "gc", "--keep", "1", "--runs-dir", runs)
    assert code == 0, err
    assert sorted(out.split()[3:]) == sorted(p.name for p in planted)
    assert not any(p.exists() for p in planted) and keep.is_dir()
    assert (victim / "precious.txt").read_text() == "keep me" and (outside / "run.json").is_file()



@pytest.mark.parametrize("args", [("--max-minutes", "inf"), ("--max-minutes", "nan"), ("--max-minutes", "-1"),
                                  ("--max-minutes", "1e300"), ("-p", "run.max_minutes", "inf"),
                                  ("-p", "run.max_minutes", "-inf"), ("-p", "run.max_minutes", "1e12")])
def test_an_unusable_time_budget_is_one_line_exit_2_before_anything_is_created(tmp_path, capsys, args):
    """issue 17: `--max-minutes inf` left a run `running`; a finite budget the interval timer cannot hold (1e300)
    still did (OverflowError once the run folder existed)."""
    code, _, err = run_cli(capsys, "retrain", *args, "--runs-dir", tmp_path / "runs")
    assert code == exits.EXIT_USAGE and len(err) == 1 and err[0].startswith("error: run.max_minutes: "), err
    assert not (tmp_path / "runs").exists()
