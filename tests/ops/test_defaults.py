"""Defaults a scheduler can trust (issue 18 item 5): ``latest`` passed its gate, ``latest-any`` is any status, the
serving commands default to ``latest``, and ``retrain`` in a project folder reads ``./config.toml`` and says so."""

from __future__ import annotations

import inspect

import pytest

from recsys_lab.cli import serve
from recsys_lab.cli.main import main
from recsys_lab.errors import RunError
from recsys_lab.runs.registry import resolve

from ..runs.conftest import plant_run


def test_latest_is_the_newest_run_that_succeeded_and_passed_its_gate(tmp_path):
    plant_run(tmp_path, "20260101T000000Z-aaaaaa")
    plant_run(tmp_path, "20260102T000000Z-bbbbbb", gate_passed=False)
    plant_run(tmp_path, "20260103T000000Z-cccccc", status="failed", gate=None)
    assert resolve(tmp_path, "latest").name == "20260101T000000Z-aaaaaa"
    assert resolve(tmp_path, "latest-any").name == "20260103T000000Z-cccccc"


def test_latest_without_a_passing_run_says_where_to_look(tmp_path):
    plant_run(tmp_path, "20260102T000000Z-bbbbbb", gate_passed=False)
    with pytest.raises(RunError, match="no run succeeded and passed its gate.*latest-any"):
        resolve(tmp_path, "latest")
    with pytest.raises(RunError, match="no run yet"):
        resolve(tmp_path / "empty", "latest-any")


@pytest.mark.parametrize("command", [serve.recommend, serve.personas, serve.similar, serve.update])
def test_serving_commands_default_to_latest(command):
    assert inspect.signature(command).parameters["run"].default.default == "latest"


def test_retrain_in_a_project_folder_reads_its_config_toml_and_says_so_first(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text("[model]\nepochs = 0\n")  # read: the bad value stops the retrain
    assert main(["retrain"]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("config: ./config.toml (this project's")
    assert "model.epochs" in err and not (tmp_path / "runs").exists()


def test_retrain_without_config_toml_says_it_uses_the_defaults(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", "-p", "model.epochs", "0"]) == 2
    assert capsys.readouterr().out.splitlines()[0].startswith("config: defaults (no ./config.toml here")
