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

Its evaluation (taste onboarding, the fold-in-vs-retrain comparison) is :mod:`recsys_lab.evaluation.cold_start`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_lab.errors import ConfigError, DataError

__all__ = ["METHODS", "DEFAULT_METHOD", "DEFAULT_PRIOR_STRENGTH", "FoldIn", "fold_in", "fold_in_many",
           "average_user", "top_k_one"]

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
        m = sp.csr_matrix(user_items, dtype=np.float64, copy=True)  # never the caller's index arrays
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
