"""serving.saved_run: the run serving answers from. A damaged artifact is one typed error naming the file (it used
to be a raw ValueError / BadZipFile traceback from numpy), through the Python API and the CLI alike."""

from __future__ import annotations

import shutil

import pytest

from recsys_lab import serving
from recsys_lab.errors import RunError
from recsys_lab.serving.saved_run import served_run
from recsys_lab.store.folder import PRODUCTION, RunFolder

from ..conftest import cli


@pytest.fixture()
def runs(saved, tmp_path):
    """A private copy of the runs directory (tests damage it)."""
    runs_dir, folder = saved
    copy = tmp_path / "runs"
    shutil.copytree(runs_dir, copy)
    return copy, RunFolder(copy / folder.run_id)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("name", ["embeddings", "id_maps", "split"])
@pytest.mark.parametrize("call", [
    lambda d: serving.recommend(d, 1, run="production"),
    lambda d: serving.recommend_for_items(d, [1, 2]),
    lambda d: serving.similar(d, 1),
])
def test_serving_on_a_truncated_artifact_names_the_file(runs, name, call):
    runs_dir, folder = runs
    path = getattr(folder, name)
    _truncate(path)
    with pytest.raises(RunError, match=f"^{path}: cannot read \\("):
        call(runs_dir)


def test_the_cli_says_which_file_is_damaged_in_one_line(runs):
    runs_dir, folder = runs
    _truncate(folder.embeddings)
    proc = cli("recommend", "--user", "1", "--run", "production", "--runs-dir", runs_dir, cwd=runs_dir.parent)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {folder.embeddings}: cannot read (") and "Traceback" not in proc.stderr


def test_a_manifest_without_a_snapshot_is_named(runs):
    runs_dir, folder = runs
    folder.update(data={})
    with pytest.raises(RunError, match="run.json: the manifest names no data snapshot"):
        served_run(runs_dir, "production")


def test_a_served_run_is_loaded_once_per_process(saved):
    runs_dir, folder = saved
    m = served_run(runs_dir, "production")
    assert served_run(runs_dir, folder.run_id) is m
    assert m.seen.shape == m.positives.shape == (8, 6) and m.cutoff.startswith("2020-01-13")
    assert m.user_key("3") == 3 and m.popularity().tolist() == m.positives.sum(axis=0).A1.tolist()
    with pytest.raises(RunError, match="user ids are integers, got 'x'"):
        m.user_key("x")


def test_run_metrics_reads_the_metrics_file(saved):
    runs_dir, _ = saved
    assert serving.run_metrics(runs_dir) == {"ndcg@10": 0.5}
    (runs_dir.parent / "empty").mkdir(exist_ok=True)
    with pytest.raises(RunError, match="no production run"):
        serving.run_metrics(runs_dir.parent / "empty")
    assert (runs_dir / PRODUCTION).is_file()
