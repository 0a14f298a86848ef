"""End to end on the real MovieLens 100k: `recsys-lab retrain` executes the notebook with papermill."""

import json

import nbformat
import pytest

from recsys_lab.config import Config
from recsys_lab.pipeline import Retrain

from ..conftest import cli, copy_movielens

pytestmark = [pytest.mark.slow]  # real retrains through the CLI; realdata: set from the fixtures


@pytest.fixture(scope="module")
def retrain_run(first_run):
    proc, run = first_run
    return proc, [run]


def test_retrain_succeeds_and_prints_a_summary(retrain_run):
    proc, runs = retrain_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "succeeded" in proc.stdout and "popularity" in proc.stdout and "ndcg@10" in proc.stdout
    assert "gate passed; promoted to production" in proc.stdout
    assert f"report: {runs[0] / 'report.html'}" in proc.stdout


def test_run_folder_holds_manifest_metrics_artifacts_and_report(retrain_run):
    _, (run,) = retrain_run
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["run_id"] == run.name
    assert manifest["started_at"] and manifest["ended_at"]
    assert "commit" in manifest["git"]
    assert manifest["packages"]["rectools-lightfm"] and manifest["packages"]["pynndescent"]
    assert len(manifest["data"]["hash"]) == 64 and manifest["data"]["snapshot"] == manifest["data"]["hash"][:16]
    assert manifest["config"]["model"]["num_threads"] == 1
    for phase in ("ingest", "features", "fit", "index", "compile", "evaluate", "overhead", "report", "total"):
        assert manifest["timings"][phase] >= 0, phase
    assert manifest["timing_details"]["index.numba_compile"] >= 0
    for name in ("params.json", "metrics.json", "history.json", "retrain.ipynb", "report.html",
                 "artifacts/model.npz", "artifacts/embeddings.npz", "artifacts/id_maps.npz"):
        assert (run / name).is_file(), name
    # ann.method "auto": 1.7k items is below the crossover, so exact search and no index file
    assert manifest["timing_details"]["index.exact"] == 1.0 and not (run / "artifacts/index.pkl").exists()
    assert json.loads((run / "params.json").read_text()) == manifest["config"]


def test_every_figure_of_the_report_is_shown_once(retrain_run):
    """A cell whose value is a figure was shown twice (by the display hook and by the inline backend's flush):
    three figures of the report were duplicated and each rendered twice."""
    _, (run,) = retrain_run
    nb = nbformat.read(run / "retrain.ipynb", as_version=4)
    images = [[o.data["image/png"] for o in c.outputs if "image/png" in o.get("data", {})]
              for c in nb.cells if c.cell_type == "code"]
    assert sum(map(len, images)) >= 7  # training, metrics, onboarding, novelty, exposure, fairness, probes
    assert all(len(cell) <= 1 for cell in images), [len(cell) for cell in images]


def test_metrics_beat_popularity_and_ann_recall_floor(retrain_run):
    _, (run,) = retrain_run
    m = json.loads((run / "metrics.json").read_text())
    for key in ("ndcg@10", "precision@10", "recall@10", "map@10", "mrr", "auc", "coverage@10",
                "baseline.popularity.ndcg@10", "baseline.lightfm_cf.ndcg@10"):
        assert isinstance(m[key], float), key
    assert m["ndcg@10"] > m["baseline.popularity.ndcg@10"]
    assert m["ann.exact"] == 1 and "ann.recall@10" not in m  # 1,682 items: exact search, no index, no recall claim
    assert m["auc"] > 0.75 and m["ndcg@10"] > 0.1
    assert m["coverage@10"] > m["baseline.popularity.coverage@10"]
    assert 0 < m["split.cold_user_share"] < 1


def test_report_shows_metrics_table_and_training_curve(retrain_run):
    _, (run,) = retrain_run
    html = (run / "report.html").read_text()
    assert "lightfm_cf" in html and "popularity" in html and "ndcg@10" in html
    assert html.count("data:image/png") >= 2  # training curve and metrics comparison
    # a reviewer reads the verdict first; code and stderr boxes are hidden (the .ipynb keeps the code)
    top = html[html.index("<body"):]
    assert top.index(f"Promoted: run {run.name} passed all ") < top.index("Retrain: LightFM hybrid")
    assert "<dt>Gate</dt><dd>passed (" in top and "814 users, time_per_user split" in top
    assert "job.fit()" not in html and "config = {" not in html and "TqdmWarning" not in html
    assert "No production run to compare with" in html  # a sentence, not an empty drift table
    nb = nbformat.read(run / "retrain.ipynb", as_version=4)
    assert any("job.fit()" in c.source for c in nb.cells)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_notebook_metrics_equal_the_in_process_pipeline(retrain_run, workdir):
    """Same code path: the notebook's metrics equal pipeline steps run here on the same config."""
    _, (run,) = retrain_run
    params = json.loads((run / "params.json").read_text())
    job = Retrain(Config.from_dict(params))
    job.ingest()
    job.build_features()
    job.fit()
    got = job.evaluate()
    want = json.loads((run / "metrics.json").read_text())
    for key, value in got.items():
        assert value == pytest.approx(want[key], rel=1e-6, abs=1e-9), key


def test_bad_parameter_is_refused_before_any_run(workdir):
    proc = cli("retrain", "-p", "model.epoch", "3", cwd=workdir)
    assert proc.returncode == 2
    assert "model.epoch: unknown parameter" in proc.stderr


def test_failed_run_keeps_the_executed_notebook(tmp_path, ml100k_source):
    bad = copy_movielens(ml100k_source, tmp_path / "bad-ml")
    (bad / "u.data").write_text((bad / "u.data").read_text()[:5000].rsplit("\t", 1)[0])  # truncated
    proc = cli("retrain", "--data", bad, cwd=tmp_path)
    assert proc.returncode == 1
    assert "FAILED" in proc.stderr and "DataFileError" in proc.stderr and "u.data, line" in proc.stderr
    (run,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"]["ename"] == "DataFileError" and manifest["error"]["cell_index"] is not None
    nb = nbformat.read(run / "retrain.ipynb", as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors and errors[0].ename == "DataFileError"
    assert (run / "report.html").is_file()
    assert not (run / "metrics.json").exists()
