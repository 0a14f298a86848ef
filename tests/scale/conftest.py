"""Fixtures of the Ray tests: one local Ray (2 CPUs) per test session, shared by the score and sweep tests, and
a generated saved run (vectors and training interactions only: what ``score`` reads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_lab.store.artifacts import write_arrays
from recsys_lab.store.folder import RunFolder


def vector_run(root: Path, users: int, items: int, *, dim: int = 8, seen_per_user: int = 5, seed: int = 0) -> Path:
    """A run folder with random folded vectors, string user ids and ``seen_per_user`` training items per user."""
    rng = np.random.default_rng(seed)
    folder = RunFolder.create(root, {"status": "succeeded"}, run_id="20200101T000000Z-vector")
    folder.artifacts.mkdir(parents=True, exist_ok=True)
    write_arrays(folder.id_maps, user_ids=np.array([f"u{i:06d}" for i in range(users)]),
                 item_ids=np.arange(100, 100 + items, dtype=np.int64))
    write_arrays(folder.embeddings, user_vecs=rng.normal(size=(users, dim)).astype(np.float32),
                 item_vecs=rng.normal(size=(items, dim)).astype(np.float32))
    rows = np.repeat(np.arange(users), seen_per_user)
    cols = np.concatenate([rng.choice(items, seen_per_user, replace=False) for _ in range(users)])
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))
    write_arrays(folder.split, seen_indptr=seen.indptr, seen_indices=seen.indices, pos_indptr=seen.indptr,
                 pos_indices=seen.indices)
    return folder.path


@pytest.fixture(scope="session")
def local_ray():
    """A local Ray with 2 CPUs for the session (generous start-up timeout: the test machine is loaded)."""
    pytest.importorskip("ray")
    from recsys_lab.scale.cluster import RayOptions, connect, shutdown

    connect(RayOptions(num_cpus=2, start_timeout_s=180))
    yield
    shutdown()
