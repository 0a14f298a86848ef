"""The cheapest second stage: a weighted sum of per-user normalised scores, weights chosen on validation.

Each generator's scores are standardised per user over the whole catalogue (``(s - mean_u) / std_u``). Within a
user, adding a constant does not change the ranking, so the blend ranks like the dot product of
``[w_g / std_g(u) * u_g]_g`` with ``[i_g]_g``: :func:`blend_vectors` returns those vectors and the blend is scored,
evaluated and served like any model. :func:`choose_weights` tries every weight vector of a simplex grid on the
validation users (scores from generators fit before the validation slice) and keeps the best NDCG@k; the test
slice is never read.
"""

from __future__ import annotations

import itertools

import numpy as np
import scipy.sparse as sp

from recsys_lab.evaluation import keys
from recsys_lab.evaluation.ranking import ranking_metrics

__all__ = ["user_scale", "blend_vectors", "weight_grid", "choose_weights"]


def user_scale(user_vecs: np.ndarray, item_vecs: np.ndarray, *, batch: int = 512) -> np.ndarray:
    """``1 / std_u`` of every user's scores over all items (1 where the scores are constant).

    Parameters
    ----------
    user_vecs, item_vecs : ndarray
    batch : int
        Users scored at once.

    Returns
    -------
    ndarray of shape (n_users,), float32
    """
    out = np.empty(len(user_vecs), np.float32)
    for lo in range(0, len(user_vecs), batch):
        std = (user_vecs[lo:lo + batch] @ item_vecs.T).std(axis=1)
        out[lo:lo + batch] = np.where(std > 1e-12, 1.0 / np.maximum(std, 1e-12), 1.0)
    return out


def blend_vectors(generators: dict[str, tuple[np.ndarray, np.ndarray]], weights: dict[str, float]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Vectors whose dot product ranks like the blend ``sum_g w_g * z_g(u, i)``.

    Parameters
    ----------
    generators : dict of str to (user_vecs, item_vecs)
    weights : dict of str to float
        Weight per generator (zero weights are left out).

    Returns
    -------
    user_vecs, item_vecs : ndarray, float32
        Concatenated ``w_g / std_g(u) * u_g`` and ``i_g``.
    """
    us, its = [], []
    for name, w in weights.items():
        if w == 0:
            continue
        u, i = generators[name]
        us.append((u * (w * user_scale(u, i))[:, None]).astype(np.float32))
        its.append(np.asarray(i, np.float32))
    return np.hstack(us), np.hstack(its)


def weight_grid(names: tuple[str, ...], step: float) -> list[dict[str, float]]:
    """Every weight vector on the simplex with the given step (weights >= 0 summing to 1).

    Parameters
    ----------
    names : tuple of str
    step : float
        In (0, 1]; 1 / step is rounded to an integer number of parts.

    Returns
    -------
    list of dict of str to float
        Single generators first (weight 1), then the mixtures.
    """
    parts = max(int(round(1 / step)), 1)
    out = [dict(zip(names, (c / parts for c in combo)))
           for combo in itertools.product(range(parts + 1), repeat=len(names)) if sum(combo) == parts]
    return sorted(out, key=lambda w: sum(v > 0 for v in w.values()))


def choose_weights(generators: dict[str, tuple[np.ndarray, np.ndarray]], validation: sp.csr_matrix,
                   users: np.ndarray, *, exclude: sp.csr_matrix | None, k: int, step: float = 0.1,
                   batch: int = 256) -> tuple[dict[str, float], list[dict]]:
    """The blend weights with the best NDCG@k on the validation users.

    Parameters
    ----------
    generators : dict of str to (user_vecs, item_vecs)
        Generators fit before the validation slice.
    validation : csr_matrix of shape (n_users, n_items)
        Validation positives (the labels; nothing else is read).
    users : ndarray of int64
        Validation users (each with a validation positive).
    exclude : csr_matrix or None
        Items seen before the validation slice.
    k : int
    step : float
        Grid step (:func:`weight_grid`).
    batch : int
        Users scored at once.

    Returns
    -------
    weights : dict of str to float
        The best weights (ties: the earlier grid entry, i.e. the simpler blend).
    grid : list of dict
        ``{"weights", "validation"}`` per weight vector tried.
    """
    names = tuple(generators)
    grid = weight_grid(names, step)
    users = np.asarray(users, dtype=np.int64)
    total = np.zeros(len(grid))
    metric = keys.at("ndcg", k)
    for lo in range(0, len(users), batch):
        u = users[lo:lo + batch]
        z = []
        for name in names:
            s = generators[name][0][u] @ generators[name][1].T
            z.append(((s - s.mean(axis=1, keepdims=True)) / np.maximum(s.std(axis=1, keepdims=True), 1e-12))
                     .astype(np.float32))
        mask = None
        if exclude is not None:
            sub = exclude[u].tocoo()
            mask = (sub.row, sub.col)
        for j, w in enumerate(grid):
            s = sum(w[n] * z[g] for g, n in enumerate(names) if w[n] > 0)
            if mask is not None:
                s[mask] = -np.inf
            kk = min(k, s.shape[1])
            top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable"),
                                     axis=1)
            total[j] += ranking_metrics(top, u, validation, k, per_user=True)[metric].sum()
    scores = total / max(len(users), 1)
    best = int(np.argmax(scores))
    return grid[best], [{"weights": w, "validation": float(v)} for w, v in zip(grid, scores)]
