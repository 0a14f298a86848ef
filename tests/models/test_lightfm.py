import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.config import ModelConfig
from recsys_lab.errors import ModelError
from recsys_lab.models import lightfm as models


@pytest.fixture()
def checkerboard(checkerboard):
    """The planted checkerboard (tests/models/conftest.py) with identity user features."""
    train, truth = checkerboard
    return train, truth, sp.identity(train.shape[0], dtype=np.float32, format="csr")


def test_openmp_build_is_loaded():
    assert models.openmp_enabled()


def test_folded_embeddings_rank_exactly_as_lightfm_predict(checkerboard):
    train, _, ident = checkerboard
    # random side features so that biases and feature sums matter
    rng = np.random.default_rng(0)
    item_f = sp.hstack([ident, sp.csr_matrix((rng.random((20, 4)) < 0.5).astype(np.float32))]).tocsr()
    res = models.fit(train, ident, item_f, ModelConfig(epochs=5, num_threads=1, no_components=8))
    u, i = models.embeddings(res.model, ident, item_f)
    assert u.shape == (20, 9) and i.shape == (20, 9) and u.dtype == np.float32
    for user in range(20):
        lightfm = res.model.predict(user, np.arange(20), user_features=ident, item_features=item_f)
        ours = u[user] @ i.T
        # same scores up to the constant user bias, hence the same ranking
        np.testing.assert_allclose(ours - ours.mean(), lightfm - lightfm.mean(), atol=1e-4)
        assert np.argsort(-ours, kind="stable")[:5].tolist() == np.argsort(-lightfm, kind="stable")[:5].tolist()


def test_model_recovers_the_withheld_diagonal(checkerboard):
    train, truth, ident = checkerboard
    res = models.fit(train, ident, ident, ModelConfig(epochs=30, num_threads=1, no_components=8))
    u, i = models.embeddings(res.model, ident, ident)
    scores = u @ i.T
    scores[train.toarray() > 0] = -np.inf
    best = scores.argmax(axis=1)
    assert (truth[np.arange(20), best] == 1).mean() >= 0.9


def test_early_stopping_and_refit(checkerboard):
    train, _, ident = checkerboard
    calls = []

    def validate(model):  # peaks at epoch 3, then declines
        calls.append(1)
        return [0.1, 0.2, 0.3, 0.25, 0.2, 0.1, 0.05][len(calls) - 1]

    cfg = ModelConfig(epochs=20, patience=3, num_threads=1, no_components=4)
    res = models.fit(train, ident, ident, cfg, validate=validate, fit_matrix=train[:, :])
    assert res.best_epoch == 3 and res.stopped_early and len(res.history) == 6
    assert [r["epoch"] for r in res.history] == [1, 2, 3, 4, 5, 6]
    assert res.fit_seconds > 0


def test_same_seed_single_thread_is_reproducible(checkerboard):
    train, _, ident = checkerboard
    cfg = ModelConfig(epochs=3, num_threads=1, no_components=4, seed=3)
    a = models.embeddings(models.fit(train, ident, ident, cfg).model, ident, ident)
    b = models.embeddings(models.fit(train, ident, ident, cfg).model, ident, ident)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()


def test_divergence_is_a_model_error_with_a_remedy(checkerboard):
    train, _, ident = checkerboard
    cfg = ModelConfig(epochs=3, num_threads=1, no_components=4, learning_rate=1e30, loss="logistic")
    with pytest.raises(ModelError, match="decreasing model.learning_rate"):
        models.fit(train, ident, ident, cfg)


def test_save_and_load_round_trip(checkerboard, tmp_path):
    train, _, ident = checkerboard
    res = models.fit(train, ident, ident, ModelConfig(epochs=1, num_threads=1, no_components=4))
    path = models.save_model(res.model, tmp_path / "m.pkl")
    np.testing.assert_array_equal(models.load_model(path).item_embeddings, res.model.item_embeddings)
    (tmp_path / "bad.pkl").write_bytes(b"nope")
    with pytest.raises(ModelError, match="cannot load model"):
        models.load_model(tmp_path / "bad.pkl")


def test_feature_part_plus_identity_part_is_lightfm_user_representation(checkerboard):
    train, _, ident = checkerboard
    rng = np.random.default_rng(1)
    side = sp.csr_matrix((rng.random((20, 3)) < 0.6).astype(np.float32))
    uf = sp.hstack([ident, side]).tocsr()
    uf = sp.diags(1.0 / np.asarray(uf.sum(axis=1)).ravel()) @ uf  # normalised rows, as features.normalize does
    res = models.fit(train, sp.csr_matrix(uf, dtype=np.float32), ident, ModelConfig(epochs=3, num_threads=1, no_components=8))
    flags = np.r_[np.zeros(20, bool), np.ones(3, bool)]
    base = models.feature_part(res.model, uf, flags)
    identity = uf[:, :20].diagonal()[:, None] * res.model.user_embeddings[:20]
    _, full = res.model.get_user_representations(sp.csr_matrix(uf, dtype=np.float32))
    np.testing.assert_allclose(base + identity, full, atol=1e-5)
    with pytest.raises(ModelError, match="side: expected 23 flags"):
        models.feature_part(res.model, uf, flags[:-1])
