"""Candidates: each generator's top-N per user, their union, and the candidate recall ceiling.

A generator is a pair ``(user_vecs, item_vecs)`` whose dot products score items (the model, EASE, ALS,
most-popular). The candidate set of a user is the union of every generator's top-N of the items not excluded
(seen). It is kept in long form, one row per (user, item) pair sorted by user then item, so the features, the
ranker's groups and the recall ceiling read the same arrays. :func:`as_of_validation` refits the generators on the
fit part of the split: the second stage learns on the validation slice from scores that never saw it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys_lab.config import Config
from recsys_lab.models import baselines
from recsys_lab.models import lightfm as models
from recsys_lab.retrieval.topk import top_k

__all__ = ["CandidateSet", "generate", "labels", "recall_ceiling", "pair_scores", "as_of_validation"]


@dataclass
class CandidateSet:
    """The union of the generators' top-N lists, one row per (user, item) pair.

    Attributes
    ----------
    users : ndarray of shape (n_users,), int64
        The users (internal indices), in row-group order.
    row : ndarray of shape (n_pairs,), int64
        Index into ``users`` of each pair (sorted).
    item : ndarray of shape (n_pairs,), int64
        Internal item index of each pair (sorted within a user).
    ranks : dict of str to ndarray of shape (n_pairs,), float32
        Per generator, the 1-based rank of the pair in its top-N, ``N + 1`` when it did not propose it.
    n : dict of str to int
        Per generator, its N.
    """

    users: np.ndarray
    row: np.ndarray
    item: np.ndarray
    ranks: dict[str, np.ndarray] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)

    @property
    def group_sizes(self) -> np.ndarray:
        """Candidates per user (int64, shape (n_users,)), in ``users`` order."""
        return np.bincount(self.row, minlength=len(self.users)).astype(np.int64)

    def subset(self, rows: np.ndarray) -> "CandidateSet":
        """The candidates of some users only.

        Parameters
        ----------
        rows : ndarray of int
            Positions in :attr:`users` to keep (any order; kept sorted).

        Returns
        -------
        CandidateSet
            Same generators; ``row`` renumbered.
        """
        rows = np.sort(np.asarray(rows, dtype=np.int64))
        keep = np.isin(self.row, rows)
        renumber = np.full(len(self.users), -1, np.int64)
        renumber[rows] = np.arange(len(rows))
        return CandidateSet(self.users[rows], renumber[self.row[keep]], self.item[keep],
                            {g: r[keep] for g, r in self.ranks.items()}, dict(self.n))


def generate(generators: dict[str, tuple[np.ndarray, np.ndarray]], n: dict[str, int], users: np.ndarray, *,
             exclude: sp.csr_matrix | None) -> CandidateSet:
    """The union of each generator's top-``n[g]`` unexcluded items for every user.

    Parameters
    ----------
    generators : dict of str to (user_vecs, item_vecs)
        Scoring vectors per generator (only those named in ``n`` are used).
    n : dict of str to int
        N per generator.
    users : ndarray of int64
        Users to generate for.
    exclude : csr_matrix or None
        Items never proposed (seen as of the cut-off).

    Returns
    -------
    CandidateSet
    """
    users = np.asarray(users, dtype=np.int64)
    n_items = next(iter(generators.values()))[1].shape[0]
    lists = {}
    for name, size in n.items():
        items, _ = top_k(*generators[name], min(size, n_items), users=users, exclude=exclude)
        rows = np.repeat(np.arange(len(users), dtype=np.int64), items.shape[1])
        ok = items.ravel() >= 0
        ranks = np.tile(np.arange(1, items.shape[1] + 1, dtype=np.float32), len(users))
        if exclude is not None:  # top_k may fill a short list with excluded items: never propose them
            ok &= ~_member(rows, items.ravel(), users, exclude)
        lists[name] = (rows[ok] * n_items + items.ravel()[ok], ranks[ok])
    codes = np.unique(np.concatenate([c for c, _ in lists.values()])) if lists else np.zeros(0, np.int64)
    out = CandidateSet(users, codes // n_items, codes % n_items, n=dict(n))
    for name, (c, r) in lists.items():
        order = np.argsort(c, kind="stable")
        c, r = c[order], r[order]
        pos = np.clip(np.searchsorted(c, codes), 0, max(len(c) - 1, 0))
        found = (c[pos] == codes) if len(c) else np.zeros(len(codes), bool)
        out.ranks[name] = np.where(found, r[pos] if len(c) else 0, n[name] + 1).astype(np.float32)
    return out


def _member(rows: np.ndarray, items: np.ndarray, users: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
    """Boolean per pair: is ``(users[rows], items)`` stored in ``matrix``."""
    n_items = matrix.shape[1]
    sub = matrix[users].tocoo()
    truth = np.sort(sub.row.astype(np.int64) * n_items + sub.col)
    codes = rows * n_items + items
    if not len(truth):
        return np.zeros(len(codes), bool)
    pos = np.clip(np.searchsorted(truth, codes), 0, len(truth) - 1)
    return truth[pos] == codes


def labels(cands: CandidateSet, positives: sp.csr_matrix) -> np.ndarray:
    """1 for a candidate that is a positive of its user in ``positives``, else 0 (int32, per pair).

    Parameters
    ----------
    cands : CandidateSet
    positives : csr_matrix of shape (n_users, n_items)

    Returns
    -------
    ndarray of shape (n_pairs,), int32
    """
    return _member(cands.row, cands.item, cands.users, positives).astype(np.int32)


def recall_ceiling(cands: CandidateSet, positives: sp.csr_matrix) -> dict[str, float]:
    """Share of the users' positives inside the candidate set, per generator and in total (micro average).

    Parameters
    ----------
    cands : CandidateSet
    positives : csr_matrix of shape (n_users, n_items)
        E.g. the test positives: no second stage can rank above this share of them.

    Returns
    -------
    dict of str to float
        ``total`` and one entry per generator; NaN when the users have no positive.
    """
    n_pos = int(positives[cands.users].nnz)
    hit = labels(cands, positives).astype(bool)
    if n_pos == 0:
        return {"total": float("nan"), **{g: float("nan") for g in cands.ranks}}
    out = {"total": float(hit.sum() / n_pos)}
    for name, r in cands.ranks.items():
        out[name] = float((hit & (r <= cands.n[name])).sum() / n_pos)
    return out


def pair_scores(user_vecs: np.ndarray, item_vecs: np.ndarray, cands: CandidateSet, *, batch: int = 256
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each pair's score, and the same score standardised over the user's whole catalogue (z-score).

    Parameters
    ----------
    user_vecs, item_vecs : ndarray
        A generator's vectors.
    cands : CandidateSet
    batch : int
        Users scored at once against every item.

    Returns
    -------
    score, z : ndarray of shape (n_pairs,), float32
    """
    score = np.empty(len(cands.row), np.float32)
    z = np.empty(len(cands.row), np.float32)
    starts = np.searchsorted(cands.row, np.arange(0, len(cands.users) + batch, batch))
    for b, lo in enumerate(range(0, len(cands.users), batch)):
        s = (user_vecs[cands.users[lo:lo + batch]] @ item_vecs.T).astype(np.float32)
        a, e = starts[b], starts[b + 1]
        got = s[cands.row[a:e] - lo, cands.item[a:e]]
        mean, std = s.mean(axis=1), s.std(axis=1)
        score[a:e] = got
        z[a:e] = (got - mean[cands.row[a:e] - lo]) / np.maximum(std[cands.row[a:e] - lo], 1e-12)
    return score, z


def as_of_validation(split, vectors: dict[str, tuple[np.ndarray, np.ndarray]], fits: dict, baseline_fits: dict,  # noqa: ANN001
                     config: Config, *, features: tuple[sp.csr_matrix, sp.csr_matrix] | None,
                     names: tuple[str, ...]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The generators refit on the split's fit part (before the validation slice), with their chosen settings.

    Parameters
    ----------
    split : recsys_lab.split.Split
    vectors : dict of str to (user_vecs, item_vecs)
        The final generators (``model`` = the hybrid), for their names.
    fits : dict of str to FitResult
        LightFM fits (``hybrid``'s best epoch count is reused).
    baseline_fits : dict of str to BaselineFit
        EASE's lambda and ALS's setting are reused.
    config : Config
    features : (user_features, item_features) or None
        The hybrid's feature matrices as of the validation cut-off; None: the model is not refit.
    names : tuple of str
        Generators wanted (``model``, ``ease``, ``als``, ``popularity``).

    Returns
    -------
    dict of str to (user_vecs, item_vecs)
        Every wanted generator that is available.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in names:
        if name == "model" and features is not None and "hybrid" in fits:
            cfg = dataclasses.replace(config.model, epochs=max(fits["hybrid"].best_epoch, 1), patience=0)
            res = models.fit(split.fit, features[0], features[1], cfg,
                             sample_weight=split.fit_weights if cfg.sample_weight == "weight" else None)
            out[name] = models.embeddings(res.model, *features)
        elif name == "ease" and "ease" in baseline_fits:
            out[name] = baselines.ease_vectors(split.fit, baseline_fits["ease"].params["lambda"])
        elif name == "als" and "als" in baseline_fits:
            p = baseline_fits["als"].params
            fit = baselines.fit_als(split.fit_weights, split.fit_weights, None,
                                    grid=((p["factors"], p["regularization"], p["alpha"]),), seed=config.model.seed,
                                    num_threads=config.model.num_threads, iterations=p["iterations"])
            out[name] = (fit.user_vecs, fit.item_vecs)
        elif name == "popularity":
            counts = np.asarray(split.fit.sum(axis=0), dtype=np.float32).reshape(-1, 1)
            out[name] = (np.ones((split.fit.shape[0], 1), np.float32), counts)
    return out
