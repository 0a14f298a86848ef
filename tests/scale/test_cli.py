"""``recsys-lab score`` and ``sweep`` from the command line."""

from __future__ import annotations

import polars as pl
import pytest

from recsys_lab.cli.main import main

from .conftest import vector_run


def test_sweep_with_a_bad_space_exits_2_before_ray(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text('[sweep]\n[sweep.space]\n"model.nope" = [1, 2]\n')
    assert main(["sweep", "-c", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "model.nope" in err[0]
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_score_writes_every_user(tmp_path, capsys, local_ray):
    runs = tmp_path / "runs"
    path = vector_run(runs, users=500, items=200)
    (runs / "PRODUCTION").write_text(path.name + "\n")
    out = tmp_path / "topk.parquet"
    assert main(["score", "--out", str(out), "-k", "7", "--runs-dir", str(runs)]) == 0
    df = pl.read_parquet(out)
    assert df.height == 500 and df["item_id"].list.len().unique().to_list() == [7]
    assert "500 users' top-7" in capsys.readouterr().out


def test_promote_best_without_rerun_exits_2_before_ray(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text('[sweep]\n[sweep.space]\n"model.learning_rate" = [0.05, 0.1]\n')
    assert main(["sweep", "-c", str(path), "--no-rerun", "--promote-best", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "drop --no-rerun" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
