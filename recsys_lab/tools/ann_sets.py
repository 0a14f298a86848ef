"""Test sets for candidate generation that cannot flatter the index: real models' vectors from logs of different
shapes, and a real log.

Each set is ``(user_vecs, item_vecs)`` of one fitted model; the queries of a benchmark are real users' vectors of
the same model. The sets differ in what a MIPS index relies on (popularity skew, norm spread, bias column):

- ``lightfm_a``: LightFM (WARP, the project's default 128 components, biases folded) on a
  :mod:`recsys_lab.data.synthetic` log of the default shape (Zipf exponent 1.0, 50 categories, taste 0.8).
- ``lightfm_b``: LightFM (BPR, 64 components) on a second shape: flat popularity (Zipf 0.6), 400 categories,
  taste 0.95, heavy-tailed user activity (sigma 1.5).
- ``als``: implicit ALS (64 factors, no biases, confidence ``1 + 10 * plays``) on the ``lightfm_a`` log.
- ``ml100k``: LightFM (WARP) on the real MovieLens 100k log (every rating a positive; 943 users, 1,682 items).
- ``ml100k_grown``: LightFM (WARP) trained on a log of ~100k items grown from MovieLens 100k: each real item
  becomes ``siblings`` items whose shares of its plays follow a Zipf law (rank permuted per item), each real user
  becomes ``replicas`` users who each keep a random part of the user's history. Co-occurrence at the level of the
  real items is the real log's; the vectors are learned (not the real vectors copied with noise).

Vectors are cached as ``.npz`` files under ``cache_dir`` (default: a folder in the system temp dir, never in git).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_with
from recsys_lab.errors import ConfigError

__all__ = ["SETS", "ann_sizes", "default_cache_dir", "vector_set", "lightfm_vectors"]

SETS = ("lightfm_a", "lightfm_b", "als", "ml100k", "ml100k_grown")
"""Names of the test sets, in the order ``bench --ann`` runs them."""


def default_cache_dir() -> Path:
    """Where generated vectors are cached by default: ``<system temp dir>/recsys_lab_ann``.

    Returns
    -------
    Path
        The folder (not created here).
    """
    return Path(tempfile.gettempdir()) / "recsys_lab_ann"


def ann_sizes(n_items: int) -> tuple[int, int, int]:
    """``(users, items, interactions)`` of the generated logs at ``n_items``: ``min(n_items // 2, 200_000)`` users
    (at least 100), ``max(20 * users, 5 * n_items)`` interactions (100k items: 50k users, 1 M interactions).

    Parameters
    ----------
    n_items : int
        Catalogue size.

    Returns
    -------
    tuple of int
        ``(users, items, interactions)``.
    """
    users = max(100, min(n_items // 2, 200_000))
    return users, n_items, max(20 * users, 5 * n_items)


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _lightfm(train: sp.csr_matrix, *, seed: int, epochs: int, num_threads: int, **model
             ) -> tuple[np.ndarray, np.ndarray]:
    from recsys_lab.config import ModelConfig
    from recsys_lab.models import lightfm as models

    cfg = ModelConfig(epochs=epochs, patience=0, seed=seed, num_threads=num_threads, **model)
    uf = sp.identity(train.shape[0], dtype=np.float32, format="csr")
    itf = sp.identity(train.shape[1], dtype=np.float32, format="csr")
    res = models.fit(train, uf, itf, cfg)
    return models.embeddings(res.model, uf, itf)


def _cached(path: Path | None, make: Callable[[], tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if path is not None and path.exists():
        with np.load(path) as z:
            return z["users"], z["items"]
    u, i = make()
    u, i = np.ascontiguousarray(u, dtype=np.float32), np.ascontiguousarray(i, dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)

        def _save(p: Path) -> None:
            with open(p, "wb") as fh:
                np.savez(fh, users=u, items=i)

        atomic_write_with(path, _save)
    return u, i


def lightfm_vectors(n_users: int, n_items: int, n_interactions: int, *, epochs: int = 10, seed: int = 0,
                    num_threads: int = 2, cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Real LightFM vectors of the ``lightfm_a`` set: a :mod:`recsys_lab.data.synthetic` log of the default
    shape, binarised, fitted by :func:`recsys_lab.models.lightfm.fit` (WARP, identity features) and folded by
    :func:`recsys_lab.models.lightfm.embeddings`.

    Parameters
    ----------
    n_users, n_items, n_interactions : int
        Sizes of the generated log.
    epochs, seed, num_threads : int
        LightFM settings.
    cache_dir : path, optional
        Where to keep ``lightfm_<users>_<items>_<interactions>_<epochs>_<seed>.npz``; a cached file is reused.

    Returns
    -------
    user_vecs : ndarray of shape (n_users, d + 1), float32
    item_vecs : ndarray of shape (n_items, d + 1), float32
    """
    from recsys_lab.data import synthetic

    cache = (Path(cache_dir) / f"lightfm_{n_users}_{n_items}_{n_interactions}_{epochs}_{seed}.npz"
             if cache_dir else None)

    def make() -> tuple[np.ndarray, np.ndarray]:
        log = synthetic.generate(n_users, n_items, n_interactions, seed=seed)
        train = _binary(log.interactions["user_id"].to_numpy(), log.interactions["item_id"].to_numpy(),
                        (n_users, n_items))
        return _lightfm(train, seed=seed, epochs=epochs, num_threads=num_threads)

    return _cached(cache, make)


def _lightfm_b(n_users: int, n_items: int, n_inter: int, seed: int, epochs: int, threads: int
               ) -> tuple[np.ndarray, np.ndarray]:
    from recsys_lab.data import synthetic

    log = synthetic.generate(n_users, n_items, n_inter, seed=seed + 1, zipf_exponent=0.6, activity_sigma=1.5,
                             n_categories=400, taste=0.95)
    train = _binary(log.interactions["user_id"].to_numpy(), log.interactions["item_id"].to_numpy(),
                    (n_users, n_items))
    return _lightfm(train, seed=seed, epochs=epochs, num_threads=threads, loss="bpr", no_components=64)


def _als(n_users: int, n_items: int, n_inter: int, seed: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
    from recsys_lab.data import synthetic
    from recsys_lab.models import baselines

    log = synthetic.generate(n_users, n_items, n_inter, seed=seed)
    inter = log.interactions
    w = sp.csr_matrix((inter["weight"].to_numpy().astype(np.float32),
                       (inter["user_id"].to_numpy(), inter["item_id"].to_numpy())), shape=(n_users, n_items))
    w.sum_duplicates()
    fit = baselines.fit_als(w, w, None, grid=((64, 0.1, 10.0),), seed=seed, num_threads=threads)
    return fit.user_vecs, fit.item_vecs


def _ml100k_matrix() -> sp.csr_matrix:
    from recsys_lab.data import movielens

    inter = movielens.load_movielens_100k().interactions
    users = inter["user_id"].cast(str).to_numpy()
    items = inter["item_id"].cast(str).to_numpy()
    _, u = np.unique(users, return_inverse=True)
    _, i = np.unique(items, return_inverse=True)
    return _binary(u, i, (int(u.max()) + 1, int(i.max()) + 1))


def _grown(real: sp.csr_matrix, n_items: int, n_inter: int, seed: int) -> sp.csr_matrix:
    """A log of about ``n_items`` items grown from ``real`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_u, n_i = real.shape
    siblings = max(1, n_items // n_i)
    replicas = max(1, int(round(n_inter / real.nnz / 0.2)))  # each replica keeps ~20 % of the user's history
    keep = n_inter / (real.nnz * replicas)
    coo = real.tocoo()
    zipf = (np.arange(1, siblings + 1) ** -1.0)
    zipf /= zipf.sum()
    rank_of = np.argsort(rng.random((n_i, siblings)), axis=1)  # item j's sibling s has Zipf rank rank_of[j, s]
    rows, cols = [], []
    for r in range(replicas):
        take = rng.random(coo.nnz) < keep
        u, j = coo.row[take], coo.col[take]
        s = rank_of[j, rng.choice(siblings, size=len(j), p=zipf)]
        rows.append(u.astype(np.int64) * replicas + r)
        cols.append(j.astype(np.int64) * siblings + s)
    rows_a, cols_a = np.concatenate(rows), np.concatenate(cols)
    used, rows_a = np.unique(rows_a, return_inverse=True)  # drop replicas that kept nothing
    return _binary(rows_a, cols_a, (len(used), n_i * siblings))


def vector_set(name: str, n_items: int = 100_000, *, seed: int = 0, epochs: int = 10, num_threads: int = 2,
               cache_dir: str | Path | None = None, echo: Callable[[str], None] = print
               ) -> tuple[np.ndarray, np.ndarray]:
    """The user and item vectors of one test set (see the module docstring), trained once and cached.

    Parameters
    ----------
    name : str
        One of :data:`SETS`.
    n_items : int
        Catalogue size of the generated sets (default 100,000; ``ml100k`` is always 1,682 items); users and
        interactions by :func:`ann_sizes`.
    seed, epochs, num_threads : int
        Seed of the logs and fits; LightFM epochs (``ml100k``: twice as many); training threads.
    cache_dir : path, optional
        Folder of the cached vectors (default :func:`default_cache_dir`).
    echo : callable
        Receives one line when a set is trained (not when read from the cache).

    Returns
    -------
    user_vecs : ndarray of shape (n_users, d), float32
    item_vecs : ndarray of shape (n_items, d), float32

    Raises
    ------
    ConfigError
        Unknown set name.
    """
    if name not in SETS:
        raise ConfigError(f"unknown vector set {name!r}; expected one of {SETS}", parameter="set")
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    n_users, _, n_inter = ann_sizes(n_items)
    if name == "lightfm_a":
        return lightfm_vectors(n_users, n_items, n_inter, epochs=epochs, seed=seed, num_threads=num_threads,
                               cache_dir=folder)
    tag = "ml100k" if name == "ml100k" else f"{n_items}_{epochs}_{seed}"
    path = folder / f"{name}_{tag}.npz"
    fresh = not path.exists()
    t0 = time.perf_counter()
    if name == "lightfm_b":
        out = _cached(path, lambda: _lightfm_b(n_users, n_items, n_inter, seed, epochs, num_threads))
    elif name == "als":
        out = _cached(path, lambda: _als(n_users, n_items, n_inter, seed, num_threads))
    elif name == "ml100k":
        out = _cached(path, lambda: _lightfm(_ml100k_matrix(), seed=seed, epochs=2 * epochs,
                                             num_threads=num_threads))
    else:
        out = _cached(path, lambda: _lightfm(_grown(_ml100k_matrix(), n_items, n_inter, seed), seed=seed,
                                             epochs=epochs, num_threads=num_threads))
    if fresh:
        echo(f"trained {name}: {out[0].shape[0]:,} users x {out[1].shape[0]:,} items in "
             f"{time.perf_counter() - t0:.0f} s (cached in {folder})")
    return out
