"""The model is saved as arrays (``artifacts/model.npz``) and rebuilt without unpickling anything: it predicts and
trains on exactly as the fitted model; a pickle planted in a run folder (as ``model.pkl``, as ``model.npz`` or
inside it) is never executed by any command or API that loads the run."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from recsys_lab import serving
from recsys_lab.cli.main import main
from recsys_lab.config import ModelConfig
from recsys_lab.errors import ModelError, RecsysLabError, RunError
from recsys_lab.models import lightfm
from recsys_lab.store.artifacts import load_run
from recsys_lab.store.folder import PRODUCTION, RunFolder


class Payload:
    """Unpickling this writes ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture()
def fitted():
    rng = np.random.default_rng(3)
    train = sp.csr_matrix((rng.random((12, 9)) < 0.3).astype(np.float32))
    uf, itf = sp.identity(12, format="csr", dtype=np.float32), sp.identity(9, format="csr", dtype=np.float32)
    cfg = ModelConfig(no_components=3, epochs=2, num_threads=1, patience=0, loss="warp", learning_rate=0.07)
    return lightfm.fit(train, uf, itf, cfg).model, train, uf, itf


def test_a_saved_model_predicts_and_trains_on_as_the_fitted_one(fitted, tmp_path):
    model, train, uf, itf = fitted
    again = lightfm.load_model(lightfm.save_model(model, tmp_path / "model.npz"))
    users, items = np.repeat(np.arange(12), 9), np.tile(np.arange(9), 12)
    np.testing.assert_array_equal(again.predict(users, items, user_features=uf, item_features=itf),
                                  model.predict(users, items, user_features=uf, item_features=itf))
    assert again.get_params().keys() == model.get_params().keys()
    assert {k: v for k, v in again.get_params().items() if k != "random_state"} == \
        {k: v for k, v in model.get_params().items() if k != "random_state"}
    for m in (model, again):  # same random state: one more epoch gives the same parameters
        m.fit_partial(train, user_features=uf, item_features=itf, epochs=1, num_threads=1)
    np.testing.assert_array_equal(again.item_embeddings, model.item_embeddings)
    with np.load(tmp_path / "model.npz", allow_pickle=False) as z:  # nothing in it needs a pickle
        assert all(z[name].dtype != object for name in z.files)


def test_a_model_file_that_does_not_fit_its_parameters_is_refused(fitted, tmp_path):
    model, *_ = fitted
    path = lightfm.save_model(model, tmp_path / "model.npz")
    arrays = dict(np.load(path, allow_pickle=False))
    np.savez(tmp_path / "bad.npz", **{**arrays, "user_biases": arrays["user_biases"][:-1]})
    with pytest.raises(ModelError, match=r"bad.npz: cannot load model \(user_biases is float32 \(11,\)"):
        lightfm.load_model(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad.npz", **{**arrays, "params": np.array('{"loss": "warp"}')})
    with pytest.raises(ModelError, match="params must name exactly"):
        lightfm.load_model(tmp_path / "bad.npz")
    with pytest.raises(ModelError, match="never fitted"):
        lightfm.save_model(lightfm.LightFM(), tmp_path / "x.npz")


@pytest.fixture()
def planted(saved, tmp_path):
    """A copy of the saved production run whose model is a pickle payload only (``model.npz`` removed)."""
    _, folder = saved
    runs_dir = tmp_path / "runs"
    copy = RunFolder(shutil.copytree(folder.path, runs_dir / folder.run_id))
    (runs_dir / PRODUCTION).write_text(copy.run_id + "\n")
    copy.model.unlink()
    marker = tmp_path / "PWNED"
    copy.legacy_model.write_bytes(pickle.dumps(Payload(marker)))
    # and an index pickle as the runs of older versions wrote it (index.pkl): `similar` once unpickled it
    (copy.artifacts / "index.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return runs_dir, copy, marker


def test_a_legacy_model_pickle_is_refused_and_never_loaded(planted):
    _, copy, marker = planted
    with pytest.raises(RunError, match=f"^{copy.legacy_model}: not loaded \\(a pickled model can run code"):
        load_run(copy.path).model()
    with pytest.raises(RunError, match="model.pkl: not loaded"):
        load_run(copy.path, verify=True)
    assert not marker.exists()


@pytest.mark.parametrize("inside", [False, True])
def test_a_pickle_named_model_npz_is_refused_and_never_loaded(planted, inside):
    _, copy, marker = planted
    if inside:  # an .npz whose array is a pickled object
        np.savez(copy.model, params=np.array([Payload(marker)], dtype=object))
    else:
        copy.model.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(RunError, match=f"^{copy.model}: cannot read \\(cannot load model"):
        load_run(copy.path).model()
    assert not marker.exists()


def test_no_command_that_loads_the_run_runs_a_planted_pickle(planted, tmp_path):
    runs_dir, copy, marker = planted
    from recsys_lab.pipeline import Production

    update = tmp_path / "new.csv"
    pl.DataFrame({"user_id": [1], "item_id": [6], "rating": [5], "timestamp": [1_600_000_000]}).write_csv(update)
    calls = [lambda: serving.recommend(runs_dir, 1, run="production", k=3),
             lambda: serving.recommend_for_items(runs_dir, [1, 2], k=3),
             lambda: serving.similar(runs_dir, 1, k=3),
             lambda: serving.persona_lists(runs_dir, run="production", k=3),
             lambda: serving.user_history(runs_dir, 1, run="production"),
             lambda: serving.item_space(runs_dir),
             lambda: serving.update(runs_dir, update),
             lambda: serving.cold_start_evaluation(runs_dir, k=3),
             lambda: serving.similar(runs_dir, 1, k=3, run="production"),
             lambda: load_run(copy.path).index(),
             lambda: Production(copy.path),
             lambda: load_run(copy.path, verify=True)]
    for call in calls:
        try:
            call()
        except RecsysLabError:
            pass
    for argv in (["recommend", "--user", "1", "--run", "production"], ["similar", "--item", "1"],
                 ["similar", "--item", "1", "--run", "production"], ["personas"],
                 ["runs", "show", copy.run_id], ["runs", "list"], ["runs", "compare", copy.run_id, copy.run_id]):
        main([*argv, "--runs-dir", str(runs_dir)])
    assert not marker.exists()
