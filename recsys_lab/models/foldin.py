"""Fold-in: user vectors computed from a handful of (item, weight) pairs with the item side frozen.

A new user (taste onboarding) or a user with new interactions (near-real-time update) gets a vector in the
folded space of :func:`recsys_lab.models.lightfm.embeddings` without a retrain: item vectors ``[i, b_i]`` of shape
``(n_items, d + 1)`` stay as trained, the user vector is ``[u, 1]`` of shape ``(d + 1,)`` and an item scores
``u·i + b_i`` (the ranking of ``LightFM.predict``).

Methods (``method=``):

``"mean"``
    ``u = base + sum_j w_j i_j / sum_j w_j``: the weighted mean of the items' embeddings (bias column
    excluded); with a ``prior`` (the average trained user, :func:`average_user`) the posterior mean
    ``(sum_j w_j i_j + lam * prior) / (sum_j w_j + lam)``, which keeps one pick from overruling everything.
``"ridge"``
    Least squares against the item vectors with confidence weights, the implicit-ALS user step of Hu, Koren &
    Volinsky, "Collaborative Filtering for Implicit Feedback Datasets", ICDM 2008, eq. (4):
    ``z = argmin sum_{all j} c_j (p_j - o_j - (base + z)·i_j)^2 + reg |z|^2`` with ``p_j = target`` for the
    user's items, 0 elsewhere, ``c_j = 1 + alpha w_j``, ``o_j = b_j`` (``offset=True``: the frozen item bias as
    an offset) or 0 (default: the bias is added only when scoring); ``u = base + z``. Closed form
    ``z = (G + I_P^T (C_P - 1) I_P + reg I)^-1 rhs`` with the Gram matrix ``G = I^T I`` computed once
    (Takács, Pilászy, Tikk, "Applications of the conjugate gradient method for implicit feedback
    collaborative filtering", RecSys 2011, for the ``G + sparse update`` trick).
``"bpr"``
    A few epochs of full-batch gradient ascent of the BPR criterion (Rendle et al., "BPR: Bayesian
    Personalized Ranking from Implicit Feedback", UAI 2009; one of LightFM's own losses) on the user row only,
    ``sum_{p, n} w_p log sigma(s_p - s_n) - reg |z|^2`` with ``s_j = (base + z)·i_j + b_j`` and
    ``n_negatives`` uniformly sampled negatives per positive and epoch (seeded: deterministic).

``base`` is the user's *feature part*: LightFM represents a user as the sum of the embeddings of the user's
features (identity token plus side features, weights normalised per row; Kula 2015, arXiv:1507.08439, eq. 1).
For a user with side features (age, occupation, ...) the side part is known without any interaction; fold-in
then solves only for the missing identity part ``z`` and returns ``base + z``. Without side features
``base = 0``.

The default method is chosen by measurement (see :data:`DEFAULT_METHOD`).

Onboarding evaluation (:func:`onboarding_curve`) and the warm-user comparison with a full retrain
(:func:`retrain_recovery`) are pure array functions; :class:`Histories` builds per-user positives in time
order from the columns of an interactions frame.

Calling from a :class:`recsys_lab.split.Split` (what ``pipeline.Retrain`` needs for ``cold.*`` metrics)::

    m, curve, recovery = foldin.cold_start_from_split(
        job.dataset.interactions, job.split, *job.vectors["hybrid"],
        positive_threshold=job.config.data.positive_threshold, k=job.config.eval.k)
    job.metrics.update(m)   # cold.foldin.ndcg@10@n5, cold.popularity.ndcg@10@n5, cold.diff...@n5.lo/.hi,
                            # cold.n_users@n5, ... for n in 0, 1, 3, 5, 10; warm.foldin_last10.ndcg@10,
                            # warm.retrain.ndcg@10, warm.popularity.ndcg@10, warm.foldin_recovered, warm.n_users
    plots.onboarding_curve(curve.table())   # report figure; curve.per_n[n] holds per-user values

Cold users are those without any training interaction (``split.train_seen`` row empty); their test positives
in time order are the onboarding picks then the targets. Pure-array entry points: :func:`cold_start_metrics`,
:func:`onboarding_curve` with :class:`Histories`, :func:`retrain_recovery`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recsys_lab.errors import ConfigError, DataError
from recsys_lab.evaluation.intervals import paired_difference
from recsys_lab.retrieval.topk import top_k

__all__ = ["METHODS", "DEFAULT_METHOD", "FoldIn", "fold_in", "fold_in_many", "Histories", "OnboardingResult",
           "onboarding_curve", "RecoveryResult", "retrain_recovery", "top_k_one", "cold_start_metrics",
           "cold_start_from_split"]

METHODS = ("mean", "ridge", "bpr")
DEFAULT_METHOD = "mean"
"""Chosen by measurement on ML-100k cold users (WARP hybrid, 64 components; NDCG@10 after 5 onboarding items,
global temporal split with test_fraction 0.4, 349 users, seed 42): mean 0.338, bpr 0.272, ridge 0.263 (HKV
with the bias as offset: lower still, it un-learns the popularity the biases carry), most-popular 0.309; the
same order on the 20 % split and for seeds 7 and 123. WARP-trained item embeddings are not a least-squares
geometry; the mean of the picked items is what WARP's user gradient points to."""

DEFAULT_PRIOR_STRENGTH = 1.0
"""Chosen on validation cold users (users first seen between the validation cut-off and the test cut-off, a
model fit on the fit part only; 0, 0.5, 1, 2, 4 tried): 1 was best or within 0.007 NDCG@10 for n = 1, 3, 5.
On test (40 % split, 353 users) it moves fold-in minus most-popular at n = 1 from -0.036 to -0.001 and at
n = 3 from +0.014 to +0.021 [+0.010, +0.033], n = 5 +0.029 -> +0.031 [+0.018, +0.043]."""

_CHUNK_CELLS = 1 << 21  # float64 cells of a chunk's padded (users, longest, d) item block: 16 MiB


class FoldIn:
    """Fold users into a frozen item space.

    Holds what does not depend on the user (item embeddings, biases, the Gram matrix ``I^T I`` and ``I^T b``),
    so folding one user costs ``O(|items| d^2 + d^3)`` whatever the catalogue size.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded item vectors ``[i, b_i]`` (``artifacts/embeddings.npz`` ``item_vecs``).
    method : str
        ``"mean"`` (default, :data:`DEFAULT_METHOD`), ``"ridge"`` or ``"bpr"``; see the module docstring.
    reg : float
        L2 penalty on the folded part ``z`` (ridge and bpr). Default 1.0 (ridge) / 0.01 (bpr) when None.
    alpha : float
        Ridge confidence slope: ``c_j = 1 + alpha * w_j`` (default 20; Hu et al. use 40 on watch counts).
    offset : bool
        Ridge: fit ``p_j - b_j`` (the frozen bias as an offset, True) or ``p_j`` with the bias added only when
        scoring (default False: measured better on ML-100k, the offset version cancels the popularity the
        biases carry).
    target : float
        Ridge: preference value of the user's items (default 1, as in Hu et al.).
    epochs, learning_rate, n_negatives : int, float, int
        BPR: full-batch gradient steps (default 30), step size (default 0.5, per mean pair gradient) and
        sampled negatives per positive and epoch (default 20).
    seed : int
        Seed of the BPR negative sampling (default 0). Mean and ridge are deterministic without it.
    prior : ndarray of shape (d,) or (d + 1,), optional
        Mean method: the population's average user embedding (:func:`average_user`). The fold-in becomes
        ``(sum_j w_j i_j + prior_strength * prior) / (sum_j w_j + prior_strength)``: the posterior mean with
        the average user as a prior worth ``prior_strength`` items (a conjugate-normal shrinkage). It turns a
        single pick from worse than most-popular into a tie on ML-100k (see :data:`DEFAULT_PRIOR_STRENGTH`);
        a user without items gets ``prior``. Ignored by ridge and bpr.
    prior_strength : float
        Weight of the prior in items (default :data:`DEFAULT_PRIOR_STRENGTH`).

    Raises
    ------
    ConfigError
        Unknown method or a non-positive hyper-parameter (names the parameter).
    DataError
        ``item_vecs`` is not a 2-D array with at least 2 columns, or holds NaN/inf.

    Examples
    --------
    >>> fold = FoldIn(item_vecs)                          # doctest: +SKIP
    >>> u = fold.user([50, 172, 181])                    # (d + 1,) float32, last entry 1
    >>> scores = item_vecs @ u                           # ranks as LightFM.predict would
    """

    def __init__(self, item_vecs: np.ndarray, *, method: str = DEFAULT_METHOD, reg: float | None = None,
                 alpha: float = 20.0, offset: bool = False, target: float = 1.0, epochs: int = 30, learning_rate: float = 0.5, n_negatives: int = 20,
                 seed: int = 0, prior: np.ndarray | None = None, prior_strength: float = 1.0) -> None:
        if method not in METHODS:
            raise ConfigError(f"unknown fold-in method {method!r}; expected one of {', '.join(METHODS)}",
                              parameter="method")
        iv = np.asarray(item_vecs)
        if iv.ndim != 2 or iv.shape[1] < 2 or iv.shape[0] < 1:
            raise DataError(f"item_vecs: expected shape (n_items, d + 1) with d >= 1, got {iv.shape}")
        if not np.all(np.isfinite(iv)):
            raise DataError("item_vecs: holds NaN or inf")
        reg = (1.0 if method == "ridge" else 0.01) if reg is None else float(reg)
        for name, value in (("reg", reg), ("alpha", alpha), ("learning_rate", learning_rate)):
            if not value >= 0 or (name != "reg" and value <= 0):
                raise ConfigError(f"must be > 0 (reg >= 0), got {value}", parameter=name)
        if epochs < 1 or n_negatives < 1:
            raise ConfigError(f"epochs and n_negatives must be >= 1, got {epochs}, {n_negatives}",
                              parameter="epochs/n_negatives")
        self.method, self.reg, self.alpha = method, reg, float(alpha)
        self.offset, self.target = bool(offset), float(target)
        self.epochs, self.learning_rate, self.n_negatives, self.seed = int(epochs), float(learning_rate), \
            int(n_negatives), int(seed)
        self.item_vecs = np.ascontiguousarray(iv, dtype=np.float32)
        self._prior = None
        if prior is not None:
            pr = np.asarray(prior, dtype=np.float64).ravel()
            if len(pr) not in (iv.shape[1] - 1, iv.shape[1]) or not np.all(np.isfinite(pr)):
                raise DataError(f"prior: expected {iv.shape[1] - 1} finite values (a user embedding), got {pr.shape}")
            self._prior = pr[:iv.shape[1] - 1]
        if not prior_strength >= 0:
            raise ConfigError(f"must be >= 0, got {prior_strength}", parameter="prior_strength")
        self.prior_strength = float(prior_strength) if prior is not None else 0.0
        self._v = self.item_vecs[:, :-1].astype(np.float64)
        self._b = self.item_vecs[:, -1].astype(np.float64)
        self.n_items, self.dim = self._v.shape
        if method == "ridge":
            self._gram = self._v.T @ self._v
            self._vb = self._v.T @ self._b if offset else np.zeros(self.dim)

    def __repr__(self) -> str:
        return f"FoldIn(method={self.method!r}, n_items={self.n_items}, d={self.dim})"

    # -- public ------------------------------------------------------------------------------------------
    def user(self, items: np.ndarray | list, weights: np.ndarray | list | None = None, *,
             base: np.ndarray | None = None) -> np.ndarray:
        """Fold in one user.

        Parameters
        ----------
        items : array-like of int, shape (m,)
            Internal item indices the user interacted with (may be empty).
        weights : array-like of float, shape (m,), optional
            Interaction weights (default 1). Repeated items add up.
        base : ndarray of shape (d,) or (d + 1,), optional
            The user's feature part (see module docstring); a folded ``[u, 1]`` vector is accepted.

        Returns
        -------
        ndarray of shape (d + 1,), float32
            ``[u, 1]``. With no items: ``[base, 1]`` (zeros without base: every item then scores its bias).
        """
        items = np.asarray(items, dtype=np.int64).ravel()
        w = np.ones(len(items), np.float32) if weights is None else np.asarray(weights, np.float32).ravel()
        if len(w) != len(items):
            raise DataError(f"weights: expected {len(items)} values (one per item), got {len(w)}")
        if self.method == "mean" and len(items) and np.all(w > 0) and items.min() >= 0 and items.max() < self.n_items:
            out = np.ones(self.dim + 1, np.float32)                   # fast path, same result as users()
            lam = self.prior_strength
            out[:-1] = (w @ self._v[items] + (lam * self._prior if lam else 0.0)) / (w.sum() + lam)
            if base is not None:
                out[:-1] += self._base_row(base)
            return out
        m = sp.csr_matrix((w, items, np.array([0, len(items)])), shape=(1, self.n_items))
        return self.users(m, base=None if base is None else np.asarray(base)[None, :])[0]

    def users(self, user_items: sp.csr_matrix | sp.sparray, *, base: np.ndarray | None = None) -> np.ndarray:
        """Fold in many users at once (vectorised, no loop over users).

        Parameters
        ----------
        user_items : sparse matrix of shape (n_users, n_items)
            Interaction weights (> 0) per user; duplicates are summed, explicit zeros ignored.
        base : ndarray of shape (n_users, d) or (n_users, d + 1), optional
            Feature part of each user.

        Returns
        -------
        ndarray of shape (n_users, d + 1), float32
            Folded user vectors ``[u, 1]``; rows without items are ``[base, 1]``.

        Raises
        ------
        DataError
            Wrong number of columns, an item index out of range, a negative or non-finite weight, or a
            ``base`` of the wrong shape.
        """
        m = sp.csr_matrix(user_items, dtype=np.float64)
        if m.shape[1] != self.n_items:
            raise DataError(f"user_items: expected {self.n_items} columns (items), got {m.shape[1]}")
        m.sum_duplicates()
        m.eliminate_zeros()
        if m.nnz and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
            raise DataError("user_items: weights must be finite and >= 0")
        n = m.shape[0]
        b0 = np.zeros((n, self.dim))
        if base is not None:
            b = np.asarray(base, dtype=np.float64)
            if b.ndim != 2 or b.shape[0] != n or b.shape[1] not in (self.dim, self.dim + 1):
                raise DataError(f"base: expected shape ({n}, {self.dim}) or ({n}, {self.dim + 1}), got {b.shape}")
            b0 = b[:, :self.dim].copy()
        if self.method == "mean":
            z = self._mean(m)
        elif self.method == "ridge":
            z = self._ridge(m, b0)
        else:
            z = self._bpr(m, b0)
        out = np.empty((n, self.dim + 1), dtype=np.float32)
        out[:, :-1] = b0 + z
        out[:, -1] = 1.0
        return out

    def _base_row(self, base: np.ndarray) -> np.ndarray:
        b = np.asarray(base, dtype=np.float64).ravel()
        if len(b) not in (self.dim, self.dim + 1):
            raise DataError(f"base: expected shape ({self.dim},) or ({self.dim + 1},), got {b.shape}")
        return b[:self.dim]

    # -- methods -----------------------------------------------------------------------------------------
    def _mean(self, m: sp.csr_matrix) -> np.ndarray:
        sums = np.asarray(m.sum(axis=1)).ravel()
        lam = self.prior_strength
        if lam:  # (sum_j w_j i_j + lam * prior) / (sum_j w_j + lam): Bayesian shrinkage toward the average user
            return (np.asarray(m @ self._v) + lam * self._prior[None, :]) / (sums + lam)[:, None]
        sums[sums == 0] = 1.0
        return np.asarray(sp.diags(1.0 / sums) @ m @ self._v)

    def _ridge(self, m: sp.csr_matrix, base: np.ndarray) -> np.ndarray:
        n, d = m.shape[0], self.dim
        z = np.zeros((n, d))
        rows = np.repeat(np.arange(n), np.diff(m.indptr))
        v_pos = self._v[m.indices]                                       # (nnz, d)
        c = 1.0 + self.alpha * m.data                                    # confidence of each positive
        b_pos = self._b[m.indices] * self.offset + np.einsum("nd,nd->n", v_pos, base[rows])   # offset b' = b + v·base
        # rhs = -I^T b' + sum_P [c (1 - b') + b'] v  with  I^T b' = I^T b + G base
        rhs = -(self._vb[None, :] + base @ self._gram)
        coef = c * (self.target - b_pos) + b_pos
        if len(rows):
            np.add.at(rhs, rows, v_pos * coef[:, None])
        has = np.flatnonzero(np.diff(m.indptr) > 0)
        reg = self._gram + self.reg * np.eye(d)
        empty = np.setdiff1d(np.arange(n), has)
        if len(empty):  # no items: the all-negative solution would only un-learn the biases; keep base
            rhs[empty] = 0.0
        lengths = np.diff(m.indptr)
        has = has[np.argsort(lengths[has], kind="stable")]           # similar lengths together: little padding
        lo = 0
        while lo < len(has):                                          # A_u = G + reg I + X_u^T X_u, batched
            window = lengths[has[lo:lo + 65536]]                      # ascending: padded cells grow with the step
            cells = np.arange(1, len(window) + 1) * window * d
            step = max(1, int(np.searchsorted(cells, _CHUNK_CELLS, side="right")))
            chunk = has[lo:lo + step]
            lo += step
            starts, ends = m.indptr[chunk], m.indptr[chunk + 1]
            idx = _ranges(starts, ends)
            n_row = ends - starts
            x = np.zeros((len(chunk), int(n_row.max()), d))
            x[np.repeat(np.arange(len(chunk)), n_row), idx - np.repeat(starts, n_row)] = \
                v_pos[idx] * np.sqrt(c[idx] - 1.0)[:, None]
            a = np.matmul(x.transpose(0, 2, 1), x) + reg
            z[chunk] = np.linalg.solve(a, rhs[chunk][:, :, None])[:, :, 0]
        return z

    def _bpr(self, m: sp.csr_matrix, base: np.ndarray) -> np.ndarray:
        n, d = m.shape[0], self.dim
        rng = np.random.default_rng(self.seed)
        z = np.zeros((n, d))
        if m.nnz == 0:
            return z
        counts = np.diff(m.indptr)
        rows = np.repeat(np.arange(n), counts)
        pos = m.indices
        w = m.data
        k = self.n_negatives
        r_k = np.repeat(rows, k)
        p_k = np.repeat(pos, k)
        w_k = np.repeat(w, k)
        denom = np.bincount(rows, weights=w, minlength=n) * k
        denom[denom == 0] = 1.0
        for _ in range(self.epochs):
            neg = rng.integers(0, self.n_items, size=len(p_k))
            diff = self._v[p_k] - self._v[neg]                           # (nnz k, d)
            u = base[r_k] + z[r_k]
            x = np.einsum("nd,nd->n", u, diff) + self._b[p_k] - self._b[neg]
            g = w_k / (1.0 + np.exp(np.clip(x, -30, 30)))                 # w * sigma(-x) = d log sigma(x) / dx
            grad = np.zeros((n, d))
            np.add.at(grad, r_k, diff * g[:, None])
            z += self.learning_rate * (grad / denom[:, None] - self.reg * z)
        return z


def average_user(user_vecs: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
    """The mean user embedding (the fold-in prior), over ``users`` (default all).

    Parameters
    ----------
    user_vecs : ndarray of shape (n_users, d + 1)
        Folded user vectors ``[u, 1]``.
    users : ndarray of int or bool, optional
        The users with training positives (others hold untrained random embeddings; leave them out).

    Returns
    -------
    ndarray of shape (d,), float64
    """
    u = np.asarray(user_vecs, dtype=np.float64)[:, :-1]
    u = u if users is None else u[np.asarray(users)]
    if len(u) == 0:
        raise DataError("average_user: no users to average")
    return u.mean(axis=0)


def fold_in(item_vecs: np.ndarray, items: np.ndarray | list, weights: np.ndarray | list | None = None, *,
            method: str = DEFAULT_METHOD, base: np.ndarray | None = None, seed: int = 0, **params) -> np.ndarray:
    """Fold in one user: ``FoldIn(item_vecs, method=..., seed=..., **params).user(items, weights, base=base)``.

    Returns ndarray of shape (d + 1,), float32 (``[u, 1]``). For many calls on one catalogue build a
    :class:`FoldIn` once (it caches the Gram matrix).

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded item vectors ``[i, b_i]``.
    items : array-like of int, shape (m,)
        Internal item indices of the user.
    weights : array-like of float, shape (m,), optional
        Interaction weights (default 1).
    method : str
        ``mean`` (default), ``ridge`` or ``bpr``.
    base : ndarray of shape (d,) or (d + 1,), optional
        The user's feature part.
    seed : int
        BPR sampling seed.
    **params
        Other :class:`FoldIn` hyper-parameters (``reg``, ``alpha``, ``prior`` ...).

    Returns
    -------
    ndarray of shape (d + 1,), float32
        ``[u, 1]``.

    Raises
    ------
    ConfigError
        Unknown method or a bad hyper-parameter.
    DataError
        Bad ``item_vecs``, or ``weights`` not one per item.
    """
    return FoldIn(item_vecs, method=method, seed=seed, **params).user(items, weights, base=base)


def fold_in_many(item_vecs: np.ndarray, user_items: sp.csr_matrix, *, method: str = DEFAULT_METHOD,
                 base: np.ndarray | None = None, seed: int = 0, **params) -> np.ndarray:
    """Fold in many users: ``FoldIn(item_vecs, ...).users(user_items, base=base)``; shape (n_users, d + 1).

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded item vectors ``[i, b_i]``.
    user_items : sparse matrix of shape (n_users, n_items)
        Interaction weights (>= 0) per user.
    method : str
        ``mean`` (default), ``ridge`` or ``bpr``.
    base : ndarray of shape (n_users, d) or (n_users, d + 1), optional
        Feature part of each user.
    seed : int
        BPR sampling seed.
    **params
        Other :class:`FoldIn` hyper-parameters.

    Returns
    -------
    ndarray of shape (n_users, d + 1), float32
        Folded user vectors ``[u, 1]``.

    Raises
    ------
    ConfigError
        Unknown method or a bad hyper-parameter.
    DataError
        Bad ``item_vecs``, wrong number of columns, an index out of range or a negative/non-finite weight.
    """
    return FoldIn(item_vecs, method=method, seed=seed, **params).users(user_items, base=base)


def top_k_one(user_vec: np.ndarray, item_vecs: np.ndarray, k: int = 10, *,
              exclude: np.ndarray | list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k for one user vector (one GEMV + ``argpartition``).

    Parameters
    ----------
    user_vec : ndarray of shape (d + 1,)
    item_vecs : ndarray of shape (n_items, d + 1)
    k : int
        Capped at the number of candidates.
    exclude : array-like of int, optional
        Internal item indices never returned.

    Returns
    -------
    items : ndarray of shape (k,), int64, best first
    scores : ndarray of shape (k,), float32
    """
    s = item_vecs @ np.asarray(user_vec, dtype=item_vecs.dtype)
    if exclude is not None and len(exclude):
        s[np.asarray(exclude, dtype=np.int64)] = -np.inf
    n_ok = int(np.isfinite(s).sum())
    k = max(0, min(k, n_ok))
    if k == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    part = np.argpartition(s, len(s) - k)[len(s) - k:] if k < len(s) else np.arange(len(s))
    order = np.argsort(-s[part], kind="stable")
    return part[order].astype(np.int64), s[part[order]].astype(np.float32)


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[r], stops[r])`` over r, vectorised (int64)."""
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(stops, np.int64) - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else np.empty(0, np.int64)
    return np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()), dtype=np.int64)


# -- evaluation ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Histories:
    """Each user's items in time order, as a ragged array.

    Attributes
    ----------
    users : ndarray of shape (n,), int64
        Internal user indices.
    indptr : ndarray of shape (n + 1,), int64
        ``items[indptr[r]:indptr[r + 1]]`` are the items of ``users[r]``, oldest first.
    items : ndarray of shape (indptr[-1],), int64
        Internal item indices; each (user, item) pair appears once, at its first occurrence.
    """

    users: np.ndarray
    indptr: np.ndarray
    items: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        """Items per user, shape (n,), int64."""
        return np.diff(self.indptr)

    @classmethod
    def from_arrays(cls, user_idx: np.ndarray, item_idx: np.ndarray, ts: np.ndarray, *,
                    users: np.ndarray | None = None) -> "Histories":
        """Build from parallel columns (e.g. ``frame["user_idx"].to_numpy()`` of an interactions frame).

        Parameters
        ----------
        user_idx, item_idx : ndarray of shape (n_rows,), int
        ts : ndarray of shape (n_rows,)
            Anything sortable (datetime64, epoch seconds). Ties keep the input order (stable sort).
        users : ndarray of int, optional
            Keep only these users, in this order (users absent from the rows get empty histories).
            Default: every user present, ascending.

        Returns
        -------
        Histories
            Each user's distinct items in time order (a repeated item kept at its first interaction).

        Raises
        ------
        DataError
            The three columns differ in length.
        """
        u = np.asarray(user_idx, dtype=np.int64)
        it = np.asarray(item_idx, dtype=np.int64)
        t = np.asarray(ts)
        if not (len(u) == len(it) == len(t)):
            raise DataError(f"user_idx, item_idx, ts: expected equal lengths, got {len(u)}, {len(it)}, {len(t)}")
        order = np.lexsort((np.arange(len(u)), t, u))
        u, it = u[order], it[order]
        pair = np.stack([u, it], axis=1)
        _, first = np.unique(pair, axis=0, return_index=True)
        keep = np.zeros(len(u), bool)
        keep[first] = True
        u, it = u[keep], it[keep]
        users = np.unique(u) if users is None else np.asarray(users, dtype=np.int64)
        if len(users) == 0:
            return cls(users=users, indptr=np.zeros(1, np.int64), items=np.empty(0, np.int64))
        lo = np.searchsorted(u, users, side="left")
        hi = np.searchsorted(u, users, side="right")
        lengths = hi - lo
        idx = _ranges(lo, hi)
        return cls(users=users, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   items=it[idx.astype(np.int64)])

    @classmethod
    def from_lists(cls, lists: list, users: np.ndarray | None = None) -> "Histories":
        """Build from one sequence of item indices per user (oldest first).

        Parameters
        ----------
        lists : list of sequences of int
            Internal item indices per user, oldest first (kept as given: no deduplication).
        users : ndarray of int, optional
            User index of each list (default ``0 .. len(lists) - 1``).

        Returns
        -------
        Histories
        """
        lengths = np.array([len(x) for x in lists], dtype=np.int64)
        items = np.concatenate([np.asarray(x, np.int64) for x in lists]) if lists else np.empty(0, np.int64)
        users = np.arange(len(lists)) if users is None else np.asarray(users, np.int64)
        return cls(users=users, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), items=items)

    def _slice(self, rows: np.ndarray, start: np.ndarray, stop: np.ndarray, n_items: int) -> sp.csr_matrix:
        """CSR (len(rows), n_items) of ``items[indptr[r] + start : indptr[r] + stop]`` per selected row."""
        a = self.indptr[rows] + start
        b = self.indptr[rows] + stop
        lengths = np.maximum(b - a, 0)
        idx = _ranges(a, np.maximum(a, b))
        m = sp.csr_matrix((np.ones(len(idx), np.float32), self.items[idx.astype(np.int64)],
                           np.concatenate([[0], np.cumsum(lengths)])), shape=(len(rows), n_items))
        m.sum_duplicates()
        return m


def _ndcg_recall(ranked: np.ndarray, targets: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row NDCG@k (binary gain, log2 discount) and recall@k of ranked lists against target rows."""
    n, n_items = targets.shape
    coo = targets.tocoo()
    truth = np.sort(coo.row.astype(np.int64) * n_items + coo.col)
    codes = np.arange(n, dtype=np.int64)[:, None] * n_items + ranked[:, :k]
    pos = np.clip(np.searchsorted(truth, codes), 0, max(len(truth) - 1, 0))
    hits = (truth[pos] == codes) if len(truth) else np.zeros(codes.shape, bool)
    n_pos = targets.getnnz(axis=1).astype(np.float64)
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_pos, k).astype(int)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (hits @ disc[:hits.shape[1]]) / ideal, hits.sum(axis=1) / n_pos


def _rank(user_vecs: np.ndarray, item_vecs: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """Top-k item indices (n, k) per row, excluded items never first (:func:`recsys_lab.retrieval.topk.top_k`)."""
    return top_k(np.asarray(user_vecs, np.float32), np.asarray(item_vecs, np.float32), k,
                 exclude=sp.csr_matrix(exclude))[0]


def _paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """:func:`recsys_lab.evaluation.intervals.paired_difference` (95 % percentile bootstrap over users, in batches) under
    this module's keys ``diff, lo, hi, n_users``."""
    d = paired_difference(a, b, n_resamples=n_boot, seed=seed)
    return {"diff": d["delta"], "lo": d["ci_low"], "hi": d["ci_high"], "n_users": d["n_users"]}


@dataclass
class OnboardingResult:
    """Per-user metrics of fold-in and most-popular after onboarding with n items.

    Attributes
    ----------
    k : int
    per_n : dict
        ``per_n[n]`` is a dict of equal-length arrays over the users evaluated at that n: ``users`` (int64,
        internal indices), ``foldin.ndcg``, ``popularity.ndcg``, ``foldin.recall``, ``popularity.recall``
        (float64), ``n_targets`` (int64).
    """

    k: int
    per_n: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Flat means: ``foldin.ndcg@{k}@n{n}``, ``popularity.ndcg@{k}@n{n}``, ``...recall@...``, ``n_users@n{n}``.

        Returns
        -------
        dict of str to float
            Means over the users evaluated at each ``n`` (NaN when there are none); ``n_users@n{n}`` is an int.
        """
        out: dict[str, float] = {}
        for n, d in self.per_n.items():
            for name in ("foldin", "popularity"):
                for metric in ("ndcg", "recall"):
                    v = d[f"{name}.{metric}"]
                    out[f"{name}.{metric}@{self.k}@n{n}"] = float(v.mean()) if len(v) else float("nan")
            out[f"n_users@n{n}"] = int(len(d["users"]))
        return out

    def difference(self, n: int, metric: str = "ndcg", *, n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
        """Fold-in minus popularity at ``n``: mean, 95 % paired percentile-bootstrap interval over users, n_users.

        Parameters
        ----------
        n : int
            Number of onboarding positives (a key of ``per_n``).
        metric : str
            ``ndcg`` (default) or ``recall``.
        n_boot : int
            Bootstrap resamples (default 2000).
        seed : int
            Seed of the resampling.

        Returns
        -------
        dict of str to float
            ``diff`` (mean of per-user differences), ``lo``, ``hi`` (95 % interval; NaN without users) and
            ``n_users``.
        """
        d = self.per_n[n]
        return _paired_bootstrap(d[f"foldin.{metric}"], d[f"popularity.{metric}"], n_boot, seed)

    def table(self) -> list[dict]:
        """One row per n: ``n, n_users, foldin, popularity, diff, lo, hi`` (NDCG@k; interval of the difference).

        Returns
        -------
        list of dict
            One dict per ``n``, in the order of ``per_n``; NaN means when no user was evaluated.
        """
        rows = []
        for n, d in self.per_n.items():
            diff = self.difference(n)
            rows.append({"n": n, "n_users": diff["n_users"], "foldin": float(np.mean(d["foldin.ndcg"])) if len(d["users"]) else float("nan"),
                         "popularity": float(np.mean(d["popularity.ndcg"])) if len(d["users"]) else float("nan"),
                         "diff": diff["diff"], "lo": diff["lo"], "hi": diff["hi"]})
        return rows


def _check_pop(popularity: np.ndarray, n_items: int) -> np.ndarray:
    pop = np.asarray(popularity, dtype=np.float32).ravel()
    if len(pop) != n_items:
        raise DataError(f"popularity: expected {n_items} values (one per item), got {len(pop)}")
    return pop


def onboarding_curve(item_vecs: np.ndarray, popularity: np.ndarray, histories: Histories, *,
                     ns: tuple[int, ...] = (0, 1, 3, 5, 10), k: int = 10, foldin: FoldIn | None = None,
                     base: np.ndarray | None = None) -> OnboardingResult:
    """Taste-onboarding evaluation: fold in each user's first n positives, rank the rest.

    For each n in ``ns``, users with at least n + 1 items in ``histories`` are evaluated: their first n
    items are the onboarding picks (folded in; excluded from the candidates of both methods), the remaining
    items are the targets. Fold-in with n = 0 is ``[base, 1]``, or popularity itself when ``base`` is None.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded item vectors ``[i, b_i]``.
    popularity : ndarray of shape (n_items,)
        Most-popular score per item (e.g. training positives per item); ties keep index order.
    histories : Histories
        Each cold user's positives in time order (e.g. test positives, see the module docstring).
    ns : tuple of int
        Onboarding sizes.
    k : int
        Cut-off of NDCG@k and recall@k.
    foldin : FoldIn, optional
        Default ``FoldIn(item_vecs)`` (default method).
    base : ndarray of shape (len(histories.users), d or d + 1), optional
        Feature part per user (same order as ``histories.users``).

    Returns
    -------
    OnboardingResult
        Per-user values per n (for paired intervals) and :meth:`OnboardingResult.means`.
    """
    item_vecs = np.asarray(item_vecs, dtype=np.float32)
    n_items = len(item_vecs)
    pop = _check_pop(popularity, n_items)
    fold = foldin or FoldIn(item_vecs)
    lengths = histories.lengths
    result = OnboardingResult(k=k)
    for n in ns:
        rows = np.flatnonzero(lengths >= n + 1)
        z = np.zeros(len(rows), np.int64)
        onboard = histories._slice(rows, z, z + n, n_items)
        targets = histories._slice(rows, z + n, lengths[rows], n_items)
        user_base = None if base is None else np.asarray(base)[rows]
        pop_ranked = _rank(np.ones((len(rows), 1), np.float32), pop[:, None], onboard, k)
        if n == 0 and user_base is None:
            fold_ranked = pop_ranked
        else:
            fold_ranked = _rank(fold.users(onboard, base=user_base), item_vecs, onboard, k)
        f_ndcg, f_rec = _ndcg_recall(fold_ranked, targets, k)
        p_ndcg, p_rec = _ndcg_recall(pop_ranked, targets, k)
        result.per_n[n] = {"users": histories.users[rows], "foldin.ndcg": f_ndcg, "popularity.ndcg": p_ndcg,
                           "foldin.recall": f_rec, "popularity.recall": p_rec,
                           "n_targets": targets.getnnz(axis=1).astype(np.int64)}
    return result


@dataclass
class RecoveryResult:
    """Warm users: fold-in of recent training items vs the full retrain's user vector vs most-popular.

    Attributes
    ----------
    k : int
    users : ndarray of int64, shape (n,)
    ndcg : dict of str -> ndarray of shape (n,), float64
        Per-user NDCG@k of ``"foldin"``, ``"retrain"`` and ``"popularity"`` on the test positives.
    """

    k: int
    users: np.ndarray
    ndcg: dict[str, np.ndarray]

    def means(self) -> dict[str, float]:
        """``foldin.ndcg@k``, ``retrain.ndcg@k``, ``popularity.ndcg@k``, ``recovered`` and ``n_users``.

        ``recovered = (foldin - popularity) / (retrain - popularity)`` of the means: the share of the
        retrain's gain over most-popular that fold-in gets without retraining (NaN if the retrain gains
        nothing).

        Returns
        -------
        dict of str to float
            The three NDCG means (NaN without users), ``recovered`` and ``n_users`` (an int).
        """
        m = {f"{name}.ndcg@{self.k}": float(v.mean()) if len(v) else float("nan") for name, v in self.ndcg.items()}
        gain = m[f"retrain.ndcg@{self.k}"] - m[f"popularity.ndcg@{self.k}"]
        m["recovered"] = (m[f"foldin.ndcg@{self.k}"] - m[f"popularity.ndcg@{self.k}"]) / gain if gain > 0 else float("nan")
        m["n_users"] = int(len(self.users))
        return m

    def difference(self, a: str = "foldin", b: str = "retrain", *, n_boot: int = 2000, seed: int = 0
                   ) -> dict[str, float]:
        """``a`` minus ``b`` (per-user NDCG@k): mean and 95 % paired bootstrap interval.

        Parameters
        ----------
        a, b : str
            Keys of ``ndcg``: ``foldin``, ``retrain`` or ``popularity`` (default ``foldin`` minus ``retrain``).
        n_boot : int
            Bootstrap resamples (default 2000).
        seed : int
            Seed of the resampling.

        Returns
        -------
        dict of str to float
            ``diff``, ``lo``, ``hi`` (NaN without users) and ``n_users``.
        """
        return _paired_bootstrap(self.ndcg[a], self.ndcg[b], n_boot, seed)


def retrain_recovery(item_vecs: np.ndarray, user_vecs: np.ndarray, popularity: np.ndarray, history: Histories,
                     test: sp.csr_matrix, exclude: sp.csr_matrix, *, last: int | None = 10, k: int = 10,
                     foldin: FoldIn | None = None) -> RecoveryResult:
    """How much of a retrain an update recovers, on warm users.

    Each user of ``history`` is folded in from their ``last`` most recent training positives (all when None)
    and ranked against the full retrain's vector and most-popular, on the same candidates (``exclude`` removed)
    and test positives.

    Parameters
    ----------
    item_vecs : ndarray of shape (n_items, d + 1), float32
    user_vecs : ndarray of shape (n_users, d + 1), float32
        The retrain's folded user vectors, indexed by internal user index.
    popularity : ndarray of shape (n_items,)
    history : Histories
        Training positives in time order of the users to evaluate (each needs >= 1 test positive).
    test : csr_matrix of shape (n_users, n_items)
        Test positives.
    exclude : csr_matrix of shape (n_users, n_items)
        Items never recommended (the split's ``train_seen``).
    last : int or None
        Most recent training items folded in (default 10).
    k : int
    foldin : FoldIn, optional

    Returns
    -------
    RecoveryResult
    """
    item_vecs = np.asarray(item_vecs, dtype=np.float32)
    n_items = len(item_vecs)
    pop = _check_pop(popularity, n_items)
    fold = foldin or FoldIn(item_vecs)
    keep = np.flatnonzero((history.lengths > 0) & (test[history.users].getnnz(axis=1) > 0))
    users = history.users[keep]
    lengths = history.lengths[keep]
    start = np.zeros(len(keep), np.int64) if last is None else np.maximum(lengths - last, 0)
    recent = history._slice(keep, start, lengths, n_items)
    excl = sp.csr_matrix(exclude)[users]
    tgt = sp.csr_matrix(test)[users]
    vecs = {"foldin": fold.users(recent), "retrain": np.asarray(user_vecs, np.float32)[users]}
    ndcg = {}
    for name, u in vecs.items():
        ndcg[name] = _ndcg_recall(_rank(u, item_vecs, excl, k), tgt, k)[0]
    ndcg["popularity"] = _ndcg_recall(_rank(np.ones((len(users), 1), np.float32), pop[:, None], excl, k), tgt, k)[0]
    return RecoveryResult(k=k, users=users, ndcg=ndcg)


def cold_start_metrics(item_vecs: np.ndarray, user_vecs: np.ndarray, popularity: np.ndarray, *,
                       user_idx: np.ndarray, item_idx: np.ndarray, ts: np.ndarray, positive: np.ndarray,
                       is_test: np.ndarray, cold_users: np.ndarray, warm_users: np.ndarray, test: sp.csr_matrix,
                       exclude: sp.csr_matrix, ns: tuple[int, ...] = (0, 1, 3, 5, 10), k: int = 10, last: int = 10,
                       foldin: FoldIn | None = None, n_boot: int = 2000, seed: int = 0
                       ) -> tuple[dict[str, float], OnboardingResult, RecoveryResult]:
    """The per-retrain cold-start measurement in one call, with flat metric names for ``metrics.json``.

    Parameters
    ----------
    item_vecs, user_vecs : ndarray, shapes (n_items, d + 1) and (n_users, d + 1), float32
        The retrain's folded vectors.
    popularity : ndarray of shape (n_items,)
        Most-popular score (training positives per item).
    user_idx, item_idx, ts : ndarray of shape (n_rows,)
        Interaction columns (``Dataset.interactions``: ``user_idx, item_idx, ts``).
    positive : ndarray of bool, shape (n_rows,)
        ``weight >= positive_threshold``.
    is_test : ndarray of bool, shape (n_rows,)
        ``ts >= split.cutoff``.
    cold_users : ndarray of int64
        Users without any training interaction (``split.train_seen.getnnz(axis=1) == 0``).
    warm_users : ndarray of int64
        ``split.warm_test_users``.
    test, exclude : csr_matrix of shape (n_users, n_items)
        ``split.test`` and ``split.train_seen`` (warm comparison only).
    ns, k : onboarding sizes and cut-off.
    last : int
        Warm users are folded in from their ``last`` most recent training positives.
    foldin : FoldIn, optional
        Default: the default method with the average trained user as prior (:func:`average_user` over the
        users with training positives, :data:`DEFAULT_PRIOR_STRENGTH`), as serving folds.

    Returns
    -------
    metrics : dict
        ``cold.foldin.ndcg@{k}@n{n}``, ``cold.popularity.ndcg@{k}@n{n}`` (and ``recall``), ``cold.n_users@n{n}``,
        ``cold.diff.ndcg@{k}@n{n}`` with ``.lo`` / ``.hi`` (95 % paired bootstrap), and
        ``warm.foldin_last{last}.ndcg@{k}``, ``warm.retrain.ndcg@{k}``, ``warm.popularity.ndcg@{k}``,
        ``warm.foldin_recovered``, ``warm.n_users``.
    onboarding : OnboardingResult
    recovery : RecoveryResult

    Example (in ``pipeline.Retrain``)::

        inter, sp_ = self.dataset.interactions, self.split
        u, i = self.vectors["hybrid"]
        m, _, _ = foldin.cold_start_metrics(
            i, u, np.asarray(sp_.train.sum(axis=0)).ravel(),
            user_idx=inter["user_idx"].to_numpy(), item_idx=inter["item_idx"].to_numpy(), ts=inter["ts"].to_numpy(),
            positive=(inter["weight"] >= threshold).to_numpy(), is_test=(inter["ts"] >= sp_.cutoff).to_numpy(),
            cold_users=np.flatnonzero(sp_.train_seen.getnnz(axis=1) == 0), warm_users=sp_.warm_test_users,
            test=sp_.test, exclude=sp_.train_seen, k=k)
        self.metrics.update(m)
    """
    pos_test = np.asarray(positive, bool) & np.asarray(is_test, bool)
    pos_train = np.asarray(positive, bool) & ~np.asarray(is_test, bool)
    u, it, t = np.asarray(user_idx), np.asarray(item_idx), np.asarray(ts)
    hist = Histories.from_arrays(u[pos_test], it[pos_test], t[pos_test], users=np.asarray(cold_users, np.int64))
    if foldin is None:
        trained = np.unique(u[pos_train]).astype(np.int64)
        foldin = FoldIn(item_vecs, prior=average_user(user_vecs, trained) if len(trained) else None)
    onboarding = onboarding_curve(item_vecs, popularity, hist, ns=ns, k=k, foldin=foldin)
    out: dict[str, float] = {}
    for n, d in onboarding.per_n.items():
        for name in ("foldin", "popularity"):
            for metric in ("ndcg", "recall"):
                v = d[f"{name}.{metric}"]
                out[f"cold.{name}.{metric}@{k}@n{n}"] = float(v.mean()) if len(v) else float("nan")
        diff = onboarding.difference(n, n_boot=n_boot, seed=seed)
        out[f"cold.diff.ndcg@{k}@n{n}"] = diff["diff"]
        out[f"cold.diff.ndcg@{k}@n{n}.lo"] = diff["lo"]
        out[f"cold.diff.ndcg@{k}@n{n}.hi"] = diff["hi"]
        out[f"cold.n_users@n{n}"] = diff["n_users"]
    wh = Histories.from_arrays(u[pos_train], it[pos_train], t[pos_train], users=np.asarray(warm_users, np.int64))
    recovery = retrain_recovery(item_vecs, user_vecs, popularity, wh, test, exclude, last=last, k=k, foldin=foldin)
    rm = recovery.means()
    out.update({f"warm.foldin_last{last}.ndcg@{k}": rm[f"foldin.ndcg@{k}"], f"warm.retrain.ndcg@{k}": rm[f"retrain.ndcg@{k}"],
                f"warm.popularity.ndcg@{k}": rm[f"popularity.ndcg@{k}"], "warm.foldin_recovered": rm["recovered"],
                "warm.n_users": rm["n_users"]})
    return out, onboarding, recovery


def cold_start_from_split(interactions, split, user_vecs: np.ndarray, item_vecs: np.ndarray, *,  # noqa: ANN001
                          positive_threshold: float, ns: tuple[int, ...] = (0, 1, 3, 5, 10), k: int = 10,
                          last: int = 10, foldin: FoldIn | None = None
                          ) -> tuple[dict[str, float], OnboardingResult, RecoveryResult]:
    """:func:`cold_start_metrics` from a dataset's interactions frame and a :class:`recsys_lab.split.Split`.

    Parameters
    ----------
    interactions : DataFrame
        ``Dataset.interactions`` (columns ``user_idx, item_idx, weight, ts``; anything whose columns have
        ``to_numpy()``, e.g. Polars).
    split : Split
        Its ``cutoff``, ``train`` (popularity), ``train_seen`` (cold users: no training interaction at all;
        warm exclusions), ``test`` and ``warm_test_users`` are used.
    user_vecs, item_vecs : ndarray
        The retrain's folded vectors (``Retrain.vectors["hybrid"]``).
    positive_threshold : float
        ``config.data.positive_threshold``.

    Example: ``m, curve, recovery = foldin.cold_start_from_split(job.dataset.interactions, job.split,
    *job.vectors["hybrid"], positive_threshold=job.config.data.positive_threshold)``.

    Returns
    -------
    metrics : dict of str to float
        As :func:`cold_start_metrics`.
    onboarding : OnboardingResult
        Per-user results of the cold users, per ``n``.
    recovery : RecoveryResult
        Per-user results of the warm users.
    """
    ts = interactions["ts"].to_numpy()
    cutoff = np.datetime64(split.cutoff.replace(tzinfo=None)) if getattr(split.cutoff, "tzinfo", None) else split.cutoff
    if np.issubdtype(ts.dtype, np.datetime64):
        cutoff = np.datetime64(cutoff).astype(ts.dtype)
    return cold_start_metrics(
        item_vecs, user_vecs, np.asarray(split.train.sum(axis=0)).ravel(),
        user_idx=interactions["user_idx"].to_numpy(), item_idx=interactions["item_idx"].to_numpy(), ts=ts,
        positive=interactions["weight"].to_numpy() >= positive_threshold, is_test=ts >= cutoff,
        cold_users=np.flatnonzero(split.train_seen.getnnz(axis=1) == 0), warm_users=split.warm_test_users,
        test=split.test, exclude=split.train_seen, ns=ns, k=k, last=last, foldin=foldin)
