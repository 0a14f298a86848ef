"""store.artifacts: what a retrain writes is read back unchanged, file names and array keys as before, and every
missing, truncated or damaged file is one RunError naming it."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from recsys_lab.errors import RunError
from recsys_lab.store.artifacts import (
    load_run,
    read_arrays,
    read_per_user_metrics,
    save_artifacts,
    write_arrays,
)
from recsys_lab.store.folder import RunFolder


@pytest.fixture()
def copy(saved, tmp_path):
    """A private copy of the saved run (these tests damage it)."""
    _, folder = saved
    return RunFolder(shutil.copytree(folder.path, tmp_path / folder.run_id))


def test_the_run_folder_keeps_its_files_and_keys(saved):
    _, folder = saved
    assert sorted(p.name for p in folder.artifacts.iterdir()) == ["embeddings.npz", "features.npz", "id_maps.npz",
                                                                  "model.npz", "split.npz"]
    keys = {p.name: np.load(p, allow_pickle=False).files for p in folder.artifacts.glob("*.npz")}
    model_keys = keys.pop("model.npz")
    assert keys == {"id_maps.npz": ["user_ids", "item_ids"], "embeddings.npz": ["user_vecs", "item_vecs"],
                    "split.npz": ["seen_indptr", "seen_indices", "pos_indptr", "pos_indices"],
                    "features.npz": ["user_tokens", "item_tokens"]}
    assert {"params", "item_embeddings", "user_biases", "rng_keys"} <= set(model_keys)


def test_load_run_reads_back_what_was_saved(saved):
    _, folder = saved
    run = load_run(folder.path)
    ids, emb = np.load(folder.id_maps), np.load(folder.embeddings)
    np.testing.assert_array_equal(run.user_ids, ids["user_ids"])
    np.testing.assert_array_equal(run.item_vecs, emb["item_vecs"])
    assert run.user_ids.tolist() == list(range(1, 9)) and run.user_vecs.shape == (8, 5)
    assert run.users.to_index([8]).tolist() == [7]
    split = run.split()
    z = np.load(folder.split)
    np.testing.assert_array_equal(split.seen.indices, z["seen_indices"])
    np.testing.assert_array_equal(split.positives.indptr, z["pos_indptr"])
    assert split.seen.shape == (8, 6) and split.positives.nnz < split.seen.nnz
    assert run.metrics == {"ndcg@10": 0.5} and run.cutoff.startswith("2020-01-13")
    assert run.snapshot_path.is_file() and run.config["model"]["no_components"] == 4
    assert type(run.model()).__name__ == "LightFM" and run.index() is None
    assert run.tokens()[1][:2] == ["item=1", "item=2"]


def test_write_arrays_round_trips(tmp_path):
    path = write_arrays(tmp_path / "a.npz", x=np.arange(3), y=np.array(["a", "b"]))
    got = read_arrays(path, ("x", "y"))
    assert got["x"].tolist() == [0, 1, 2] and got["y"].tolist() == ["a", "b"]


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path):
    path.write_bytes(b"not an npz file at all")


def _missing(path):
    path.unlink()


@pytest.mark.parametrize("damage", [_truncate, _garbage, _missing])
@pytest.mark.parametrize("name", ["id_maps", "embeddings"])
def test_a_damaged_id_map_or_embedding_file_is_a_run_error_naming_it(copy, name, damage):
    path = getattr(copy, name)
    damage(path)
    with pytest.raises(RunError, match=f"^{path}: cannot read \\("):
        load_run(copy.path)


@pytest.mark.parametrize("damage", [_truncate, _garbage])
def test_a_damaged_split_is_a_run_error_naming_it(copy, damage):
    damage(copy.split)
    run = load_run(copy.path)  # ids and vectors are fine
    with pytest.raises(RunError, match=f"^{copy.split}: cannot read \\("):
        run.split()


def test_a_missing_split_reads_as_none(copy):
    copy.split.unlink()
    assert load_run(copy.path).split() is None


def test_arrays_that_disagree_are_named(copy):
    emb = dict(np.load(copy.embeddings))
    write_arrays(copy.embeddings, user_vecs=emb["user_vecs"][:5], item_vecs=emb["item_vecs"])
    with pytest.raises(RunError, match=r"embeddings.npz: cannot read \(user_vecs has shape \(5, 5\), id_maps.npz "
                                       r"has 8 users\)"):
        load_run(copy.path)
    ids = dict(np.load(copy.id_maps))
    write_arrays(copy.id_maps, user_ids=ids["user_ids"][::-1], item_ids=ids["item_ids"])
    with pytest.raises(RunError, match=r"id_maps.npz: cannot read \(user_id: ids are not unique and sorted\)"):
        load_run(copy.path)
    write_arrays(copy.id_maps, user_ids=ids["user_ids"])
    with pytest.raises(RunError, match=r"id_maps.npz: cannot read \(KeyError"):
        load_run(copy.path)


def test_damaged_pickles_and_json_are_run_errors_naming_the_file(copy):
    _garbage(copy.model)
    copy.index.write_bytes(b"\x80\x04junk")
    copy.metrics.write_text("{not json")
    run = load_run(copy.path)
    with pytest.raises(RunError, match=f"^{copy.model}: cannot read \\("):
        run.model()
    with pytest.raises(RunError, match=f"^{copy.index}: cannot read \\("):
        run.index()
    with pytest.raises(RunError, match=f"^{copy.metrics}: the metrics file is not valid JSON"):
        run.metrics  # noqa: B018


def test_production_evidence_is_a_saved_run_whose_metrics_must_be_readable(copy):
    from recsys_lab.pipeline import Production

    prod = Production(copy.path)
    assert prod.run_id == copy.run_id and prod.item_vecs.shape == (6, 5) and prod.snapshot() is not None
    copy.run_json.write_text("{")
    assert Production(copy.path).snapshot() is None  # only drift needs the manifest
    copy.metrics.unlink()
    with pytest.raises(RunError, match=f"^production run {copy.run_id}: {copy.metrics}: no metrics file"):
        Production(copy.path)
    _truncate(copy.embeddings)
    with pytest.raises(RunError, match=f"^production run {copy.run_id}: {copy.embeddings}: cannot read"):
        Production(copy.path)


def test_per_user_metrics_are_written_with_the_artifacts_and_read_back(copy):
    with pytest.raises(RunError, match=f"^{copy.per_user_metrics}: cannot read the per-user metrics"):
        read_per_user_metrics(copy)
    frame = pl.DataFrame({"model": ["model", "model"], "user_id": [1, 2], "ndcg@10": [0.5, 1.0]})
    run = load_run(copy.path)
    save_artifacts(copy, users=run.users, items=run.items, user_vecs=run.user_vecs, item_vecs=run.item_vecs,
                   seen=run.split().seen, positives=run.split().positives, user_tokens=run.tokens()[0],
                   item_tokens=run.tokens()[1], model=run.model(), per_user=frame)
    assert read_per_user_metrics(copy.path).equals(frame)
    again = load_run(copy.path)
    np.testing.assert_array_equal(again.user_vecs, run.user_vecs)
    assert (again.split().seen != run.split().seen).nnz == 0


def test_a_healthy_run_verifies_and_keeps_what_it_read(saved):
    _, folder = saved
    run = load_run(folder.path, verify=True)
    assert run.split() is not None and run._cache.keys() >= {"split", "tokens", "model", "metrics"}


@pytest.mark.parametrize("damage", [_truncate, _garbage, _missing])
@pytest.mark.parametrize("name", ["split", "features", "model"])
def test_verify_fails_naming_any_unreadable_artifact(copy, name, damage):
    path = getattr(copy, name)
    damage(path)
    load_run(copy.path)  # the lazy load does not read it
    with pytest.raises(RunError, match=f"^{path}: cannot read \\("):
        load_run(copy.path, verify=True)
    with pytest.raises(RunError, match=f"^{path}: cannot read \\("):
        load_run(copy.path).verify()


def test_verify_fails_on_unreadable_metrics(copy):
    copy.metrics.write_text("[1, 2]")
    with pytest.raises(RunError, match=f"^{copy.metrics}: not a JSON object"):
        load_run(copy.path, verify=True)


def test_a_blend_is_written_with_the_artifacts_read_back_and_verified(copy):
    from recsys_lab.store.artifacts import SavedBlend

    run = load_run(copy.path)
    assert run.blend() is None and not copy.blend.exists()  # runs that do not serve the blend have none
    rng = np.random.default_rng(0)
    blend = SavedBlend(rng.normal(size=(len(run.users), 3)), rng.normal(size=(len(run.items), 3)),
                       {"model": 0.25, "ease": 0.75})
    save_artifacts(copy, users=run.users, items=run.items, user_vecs=run.user_vecs, item_vecs=run.item_vecs,
                   seen=run.split().seen, positives=run.split().positives, user_tokens=run.tokens()[0],
                   item_tokens=run.tokens()[1], model=run.model(), blend=blend)
    got = load_run(copy.path, verify=True).blend()
    assert got.weights == blend.weights and got.user_vecs.dtype == got.item_vecs.dtype == np.float32
    np.testing.assert_array_equal(got.item_vecs, blend.item_vecs.astype(np.float32))
    with np.load(copy.blend, allow_pickle=False) as z:  # plain arrays, the weights as JSON text
        assert sorted(z.files) == ["item_vecs", "user_vecs", "weights"] and z["weights"].dtype.kind == "U"
    _truncate(copy.blend)
    load_run(copy.path)  # the lazy load does not read it
    with pytest.raises(RunError, match=f"^{copy.blend}: cannot read \\("):
        load_run(copy.path, verify=True)
