"""Cold start in serving, on a real promoted run: onboarding from items, cold users never served their random
embedding, near-real-time updates (versions, counts, atomicity), and the cold-start notebook."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import papermill as pm
import polars as pl
import pytest

from recsys_lab import serving
from recsys_lab.errors import DataFileError
from recsys_lab.models import foldin
from recsys_lab.serving.saved_run import served_run
from recsys_lab.store.folder import PRODUCTION, RunFolder

from ..conftest import ROOT, cli

pytestmark = [pytest.mark.slow]  # real retrains through the CLI; realdata: set from the fixtures


@pytest.fixture()
def project(first_run, tmp_path):
    """A copy of the promoted real run in its own runs/ (updates never leak into other tests' run)."""
    _, run_dir = first_run
    runs = tmp_path / "runs"
    runs.mkdir()
    shutil.copytree(run_dir, runs / run_dir.name)
    (runs / PRODUCTION).write_text(run_dir.name + "\n")
    return tmp_path


def _model(runs):
    return served_run(runs, "production")


def _cold_user(runs) -> int:
    """A user of the run with no training interaction (held out by the split) who has positives in the data."""
    m = _model(runs)
    cold = m.user_ids[np.flatnonzero(m.seen.getnnz(axis=1) == 0)]
    df = m.sql("SELECT user_id FROM interactions WHERE user_id IN "
               "(SELECT unnest(?)) GROUP BY user_id HAVING max(weight) >= 4 ORDER BY user_id LIMIT 1", [cold.tolist()])
    return int(df["user_id"][0])


def test_recommend_items_cli_prints_k_fold_in_recommendations_from_latest(project):
    proc = cli("recommend", "--items", "50,172,181", cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "from latest" in proc.stdout and "path: fold-in" in proc.stdout
    recs = serving.recommend_for_items(project / "runs", [50, 172, 181])
    assert recs.height == 10 and set(recs["path"]) == {"fold-in"}
    assert not {50, 172, 181} & set(recs["item_id"])  # the picks themselves are never recommended
    assert recs["score"].is_sorted(descending=True)


def test_recommend_items_names_unknown_ids_and_falls_back_to_popularity(project):
    runs = project / "runs"
    with pytest.warns(serving.ColdStartWarning, match="unknown item_id.*999999, abc"):
        recs = serving.recommend_for_items(runs, [50, 999999, "abc"], k=5)
    assert recs["path"].to_list() == ["fold-in"] * 5
    with pytest.warns(serving.ColdStartWarning, match=r"no known item to fold in \(unknown item_id\(s\) 999999\): served the most-popular"):
        pop = serving.recommend_for_items(runs, [999999], k=5)
    assert set(pop["path"]) == {"popularity"}
    counts = _model(runs).popularity()
    assert pop["score"].to_list() == sorted(counts, reverse=True)[:5]
    proc = cli("recommend", "--items", "999999", cwd=project)
    assert proc.returncode == 0 and "path: popularity" in proc.stdout and "note: " in proc.stderr


def test_a_cold_user_is_served_by_fold_in_never_by_the_random_embedding(project):
    runs = project / "runs"
    user = _cold_user(runs)
    m = _model(runs)
    recs = serving.recommend(runs, user, run="production")
    assert set(recs["path"]) == {"fold-in"}
    rows = m.user_rows(user)
    picks = m.recent_positives(rows, serving.UPDATE_WINDOW)["item_idx"].to_numpy()
    fold = m.foldin()  # the mean shrunk toward the average trained user
    assert fold.method == "mean" and fold.prior_strength == foldin.DEFAULT_PRIOR_STRENGTH
    expected, _ = foldin.top_k_one(fold.user(picks), m.item_vecs, 10,
                                   exclude=m.items.lookup(rows["item_id"].to_numpy())[0])
    assert recs["item_id"].to_list() == m.item_ids[expected].tolist()
    proc = cli("recommend", "--user", user, "--run", "production", cwd=project)
    assert proc.returncode == 0 and "path: fold-in" in proc.stdout


def test_a_warm_user_keeps_the_model_and_an_unknown_user_gets_popularity_with_a_note(project):
    runs = project / "runs"
    assert set(serving.recommend(runs, 13, run="production")["path"]) == {"model"}
    with pytest.warns(serving.ColdStartWarning, match="unknown user_id 999999"):
        assert set(serving.recommend(runs, 999999, run="production")["path"]) == {"popularity"}
    proc = cli("recommend", "--user", "999999", "--run", "production", cwd=project)
    assert proc.returncode == 0 and "path: popularity" in proc.stdout and "unknown user_id 999999" in proc.stderr


def _write(path: Path, rows: list[tuple]) -> Path:
    pl.DataFrame(rows, schema=["user_id", "item_id", "rating", "timestamp"], orient="row").write_csv(path)
    return path


def test_update_folds_new_interactions_for_known_and_new_users(project):
    runs = project / "runs"
    before = serving.recommend(runs, 13, run="production")
    # user 13 binges children's films; new user 5000 likes Star Wars and friends; item 99999 is unknown
    kids = [1, 71, 95, 99, 404, 422, 432, 588, 625, 1219]
    t = 893_000_000
    rows = [(13, i, 5, t + j) for j, i in enumerate(kids)] + [(5000, 50, 5, t), (5000, 172, 5, t + 1),
                                                               (5000, 181, 4, t + 2), (5000, 99999, 5, t + 3),
                                                               (5000, 7, 2, t + 4)]
    proc = cli("update", "--interactions", _write(project / "new.csv", rows), cwd=project)
    assert proc.returncode == 0, proc.stderr
    assert "15 rows read" in proc.stdout and "1 skipped (unknown items: 99999)" in proc.stdout
    assert "2 users updated (1 new)" in proc.stdout and "99999" in proc.stderr
    (version,) = RunFolder(next(p for p in runs.iterdir() if p.is_dir())).updates.glob("2*")
    man = serving.updates(runs).row(0, named=True)
    assert man == {"version": version.name, "rows_read": 15, "users_updated": 2, "new_users": 1,
                   "unknown_items_skipped": 1}
    assert sorted(p.name for p in version.iterdir()) == ["interactions.parquet", "manifest.json", "user_vecs.npz"]
    assert not [p for p in version.parent.iterdir() if p.name.startswith(".tmp")]

    after = serving.recommend(runs, 13, run="production")
    assert set(after["path"]) == {"update"}
    assert after["item_id"].to_list() != before["item_id"].to_list()
    assert not set(kids) & set(after["item_id"])  # what the update says the user saw is excluded
    assert serving.recommend(runs, 13, run="production", version=None)["item_id"].to_list() == \
        before["item_id"].to_list()
    new_user = serving.recommend(runs, 5000, run="production")
    assert set(new_user["path"]) == {"update"} and not {50, 172, 181, 7} & set(new_user["item_id"])
    proc = cli("recommend", "--user", "13", "--run", "production", cwd=project)
    assert "path: update" in proc.stdout

    # a second update is cumulative: user 13 keeps its updated vector, 5000 moves
    again = serving.update(runs, _write(project / "more.csv", [(5000, 1, 5, t + 10)]))
    assert again["new_users"] == 0 and again["previous"] == version.name and again["users_in_version"] == 2
    assert len(serving.updates(runs)) == 2
    assert serving.recommend(runs, 13, run="production")["item_id"].to_list() == after["item_id"].to_list()
    assert 1 not in set(serving.recommend(runs, 5000, run="production")["item_id"])


@pytest.mark.parametrize("content, match", [
    ("user_id,item_id,rating,timestamp\n13,50,5,893000000\n13,51,abc,893000001\n", "line 3"),
    ("user_id,item_id,rating,timestamp\n13,50,9,893000000\n", r"weight 9.0 outside \[1.0, 5.0\]"),
    ("user_id,item_id,timestamp\n13,50,893000000\n", "missing column 'rating'"),
    ("user_id,item_id,rating,timestamp\nx13,50,5,893000000\n", "not of the run's id type"),
])
def test_a_malformed_update_file_changes_nothing(project, content, match):
    runs = project / "runs"
    bad = project / "bad.csv"
    bad.write_text(content)
    with pytest.raises(DataFileError, match=match):
        serving.update(runs, bad)
    assert serving.updates(runs).height == 0
    proc = cli("update", "--interactions", bad, cwd=project)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_cold_start_notebook_runs_under_papermill(project, tmp_path):
    out = tmp_path / "cold_start.ipynb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm.execute_notebook(str(ROOT / "notebooks" / "cold_start.ipynb"), str(out), kernel_name="python3",
                            parameters={"runs_dir": str(project / "runs"), "films": [50, 172, 181]},
                            cwd=str(ROOT / "notebooks"), progress_bar=False)
    text = out.read_text()
    assert "fold-in" in text and "cold.foldin.ndcg@10@n5" in text and "image/png" in text


def test_cold_start_evaluation_matches_the_run_split(project):
    metrics, curve, recovery = serving.cold_start_evaluation(project / "runs")
    saved = (project / "runs").glob("*/metrics.json")
    saved = __import__("json").loads(next(saved).read_text())
    # the same measurement as the retrain's own (same split, same vectors)
    assert metrics["cold.n_users@n5"] == saved["cold.n_users@n5"] > 80 and metrics["warm.n_users"] > 500
    assert metrics["cold.foldin.ndcg@10@n5"] == pytest.approx(saved["cold.foldin.ndcg@10@n5"])
    assert metrics["cold.foldin.ndcg@10@n0"] == metrics["cold.popularity.ndcg@10@n0"]
    assert np.isfinite(metrics["cold.diff.ndcg@10@n5.ci_low"])
    # the warm comparison folds in as many recent positives as asked (``last`` used to be ignored)
    three, _, _ = serving.cold_start_evaluation(project / "runs", ns=(0,), last=3)
    assert "warm.foldin_last3.ndcg@10" in three and "warm.foldin_last10.ndcg@10" not in three
