"""LightFM behind one door: fit with per-epoch validation and early stopping, folded embeddings, persistence.

LightFM: Kula, "Metadata Embeddings for User and Item Cold-start Recommendations", 2015,
https://arxiv.org/abs/1507.08439; API https://making.lyst.com/lightfm/docs/lightfm.html .
This is the only module that imports ``lightfm``.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_bytes
from recsys_lab.config import ModelConfig
from recsys_lab.errors import ModelError, PerformanceWarning

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # LightFM warns itself when it falls back; we warn below with our class
    from lightfm import LightFM

__all__ = ["LightFM", "FitResult", "openmp_enabled", "fit", "embeddings", "feature_part", "lightfm_reference_metrics", "save_model",
           "load_model"]

log = logging.getLogger(__name__)
_progress = logging.getLogger("recsys_lab.progress")


def openmp_enabled() -> bool:
    """True if LightFM's OpenMP extension is the one loaded (multi-threaded fit).

    Returns
    -------
    bool
    """
    return "lightfm._lightfm_fast_openmp" in sys.modules


if not openmp_enabled():  # pragma: no cover - depends on the build
    warnings.warn("LightFM was built without OpenMP: fit runs on one thread whatever num_threads says. "
                  "Reinstall rectools-lightfm with a compiler that supports -fopenmp.", PerformanceWarning)


@dataclass
class FitResult:
    """A fitted model and how it got there.

    Attributes
    ----------
    model : LightFM
    history : list of dict
        One row per epoch of the early-stopping phase: ``epoch`` (1-based), ``seconds`` (fit time of that
        epoch) and ``validation`` (the validation metric, e.g. NDCG@10; NaN without validation).
    best_epoch : int
        Epoch count of the returned model.
    stopped_early : bool
    fit_seconds : float
        Wall time of all fitting, refit included, in seconds.
    """

    model: LightFM
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    fit_seconds: float = 0.0


def _new_model(cfg: ModelConfig) -> LightFM:
    return LightFM(no_components=cfg.no_components, loss=cfg.loss, learning_rate=cfg.learning_rate,
                   learning_schedule=cfg.learning_schedule, max_sampled=cfg.max_sampled,
                   item_alpha=cfg.item_alpha, user_alpha=cfg.user_alpha, random_state=cfg.seed)


def _check_finite(model: LightFM, epoch: int) -> None:
    for name in ("item_embeddings", "user_embeddings", "item_biases", "user_biases"):
        if not np.isfinite(getattr(model, name)).all():
            raise ModelError(f"LightFM diverged at epoch {epoch}: non-finite {name}. "
                             "Try decreasing model.learning_rate or increasing model.item_alpha/user_alpha.")


def _guarded(epoch: int, method: Callable, *args, **kwargs) -> None:
    """Call LightFM, turning its divergence ``ValueError`` into :class:`ModelError` with the remedy."""
    try:
        method(*args, **kwargs)
    except ValueError as exc:
        if "finite" not in str(exc):
            raise ModelError(f"LightFM rejected its input: {exc}") from exc
        raise ModelError(f"LightFM diverged by epoch {epoch}: non-finite parameters. Try decreasing "
                         "model.learning_rate or increasing model.item_alpha/user_alpha.") from exc


def fit(train: sp.csr_matrix, user_features: sp.csr_matrix, item_features: sp.csr_matrix, cfg: ModelConfig, *,
        fit_matrix: sp.csr_matrix | None = None, fit_user_features: sp.csr_matrix | None = None,
        validate: Callable[[LightFM], float] | None = None, sample_weight: sp.csr_matrix | None = None,
        fit_sample_weight: sp.csr_matrix | None = None,
        on_epoch: Callable[[dict], None] | None = None, show_progress: bool = False) -> FitResult:
    """Fit a LightFM model, with early stopping on a validation metric when ``validate`` is given.

    Parameters
    ----------
    train : csr_matrix of shape (n_users, n_items), float32
        Positive interactions for the final model.
    user_features : csr_matrix of shape (n_users, n_user_features), float32
    item_features : csr_matrix of shape (n_items, n_item_features), float32
    cfg : ModelConfig
    fit_matrix : csr_matrix of shape (n_users, n_items), optional
        Interactions for the early-stopping phase (train minus the validation period). Default ``train``.
    fit_user_features : csr_matrix, optional
        User features for the early-stopping phase (time-windowed features computed at the validation
        cut-off, so validation interactions do not leak into them). Default ``user_features``.
    validate : callable(LightFM) -> float, optional
        Higher-is-better validation metric computed after each epoch (e.g. NDCG@10 on the validation
        period). Without it the model trains on ``train`` for ``cfg.epochs``. With it, training runs on
        ``fit_matrix`` until ``cfg.patience`` epochs pass without improvement; then the model is refit on
        ``train`` for the best epoch count (always when ``fit_matrix`` or ``fit_user_features`` differ from
        the final inputs; with identical inputs the best epoch's parameters are restored instead).
    sample_weight, fit_sample_weight : csr_matrix of shape (n_users, n_items), float32, optional
        Per-interaction weights (same nonzeros as ``train`` and ``fit_matrix``), passed to LightFM as
        ``sample_weight`` (e.g. transformed play counts). Default: every interaction weighs 1.
    on_epoch : callable(dict), optional
        Called with each history row (progress reporting in notebooks).
    show_progress : bool
        Show a tqdm bar over epochs.

    Returns
    -------
    FitResult

    Raises
    ------
    ModelError
        Embeddings became non-finite (the message suggests a lower learning rate).
    """
    from tqdm.auto import tqdm

    t_start = time.perf_counter()
    if validate is None:  # plain fit on all training data for cfg.epochs
        fit_matrix, fit_uf, fit_sample_weight = train, user_features, sample_weight
    else:
        fit_matrix = train if fit_matrix is None else fit_matrix
        fit_uf = user_features if fit_user_features is None else fit_user_features
        fit_sample_weight = sample_weight if fit_matrix is train else fit_sample_weight
    final_inputs = _weighted(train, sample_weight)
    fit_inputs = final_inputs if fit_matrix is train else _weighted(fit_matrix, fit_sample_weight)
    model = _new_model(cfg)
    history: list[dict] = []
    best, best_epoch, best_state, stopped = -np.inf, 0, None, False
    for epoch in tqdm(range(1, cfg.epochs + 1), disable=not show_progress, desc="epochs"):
        t0 = time.perf_counter()
        _guarded(epoch, model.fit_partial, fit_inputs[0], user_features=fit_uf, sample_weight=fit_inputs[1],
                 item_features=item_features, epochs=1, num_threads=cfg.num_threads)
        _check_finite(model, epoch)
        row = {"epoch": epoch, "seconds": time.perf_counter() - t0,
               "validation": float(validate(model)) if validate else float("nan")}
        history.append(row)
        if validate:
            _progress.info("  epoch %d: %.2f s, validation %.4f", epoch, row["seconds"], row["validation"])
        else:
            _progress.info("  epoch %d: %.2f s", epoch, row["seconds"])
        if on_epoch:
            on_epoch(row)
        if validate is None:
            best_epoch = epoch
            continue
        if row["validation"] > best:
            best, best_epoch = row["validation"], epoch
            best_state = {k: getattr(model, k).copy() for k in _STATE}
        elif cfg.patience and epoch - best_epoch >= cfg.patience:
            stopped = True
            log.info("early stop at epoch %d; best epoch %d (validation %.4f)", epoch, best_epoch, best)
            break
    same_inputs = fit_matrix is train and fit_uf is user_features
    if validate is not None and not same_inputs and (cfg.refit or fit_uf is not user_features):
        # refit on all training data (with features at the test cut-off) for the best number of epochs
        model = _new_model(cfg)
        _guarded(best_epoch, model.fit, final_inputs[0], user_features=user_features, item_features=item_features,
                 sample_weight=final_inputs[1], epochs=best_epoch, num_threads=cfg.num_threads)
        _check_finite(model, best_epoch)
    elif best_state is not None:
        for k, v in best_state.items():
            setattr(model, k, v)
    return FitResult(model=model, history=history, best_epoch=best_epoch, stopped_early=stopped,
                     fit_seconds=time.perf_counter() - t_start)


def _weighted(matrix: sp.csr_matrix, weights: sp.csr_matrix | None) -> tuple[sp.coo_matrix, sp.coo_matrix | None]:
    """Interactions and matching ``sample_weight`` in the COO form LightFM wants (same row and col arrays)."""
    if weights is None:
        return matrix.tocoo(), None
    w = weights.tocoo()
    return sp.coo_matrix((np.ones_like(w.data, dtype=np.float32), (w.row, w.col)), shape=w.shape), \
        sp.coo_matrix((w.data.astype(np.float32), (w.row, w.col)), shape=w.shape)


_STATE = ("item_embeddings", "item_embedding_gradients", "item_embedding_momentum", "item_biases",
          "item_bias_gradients", "item_bias_momentum", "user_embeddings", "user_embedding_gradients",
          "user_embedding_momentum", "user_biases", "user_bias_gradients", "user_bias_momentum")


def embeddings(model: LightFM, user_features: sp.csr_matrix, item_features: sp.csr_matrix
               ) -> tuple[np.ndarray, np.ndarray]:
    """User and item vectors with biases folded in, so that a dot product ranks as ``LightFM.predict``.

    LightFM scores ``u·i + b_u + b_i``. With user vector ``[u, 1]`` and item vector ``[i, b_i]`` the dot
    product is ``u·i + b_i``: the same ranking for each user (``b_u`` is constant per user).

    Parameters
    ----------
    model : LightFM
    user_features : csr_matrix of shape (n_users, n_user_features)
    item_features : csr_matrix of shape (n_items, n_item_features)

    Returns
    -------
    user_vecs : ndarray of shape (n_users, no_components + 1), float32
    item_vecs : ndarray of shape (n_items, no_components + 1), float32
    """
    _, u = model.get_user_representations(user_features)
    b_i, i = model.get_item_representations(item_features)
    user_vecs = np.hstack([u, np.ones((u.shape[0], 1), np.float32)]).astype(np.float32)
    item_vecs = np.hstack([i, b_i.reshape(-1, 1)]).astype(np.float32)
    return np.ascontiguousarray(user_vecs), np.ascontiguousarray(item_vecs)


def lightfm_reference_metrics(model: LightFM, test: sp.csr_matrix, *, train_interactions: sp.csr_matrix, k: int,
                              user_features: sp.csr_matrix, item_features: sp.csr_matrix,
                              num_threads: int = 1) -> dict[str, np.ndarray]:
    """LightFM's own ``precision_at_k`` and ``auc_score`` (``lightfm.evaluation``): the reference that
    :mod:`recsys_lab.evaluation.ranking` is compared and timed against (``recsys-lab bench``).

    Parameters
    ----------
    model : LightFM
        A fitted model.
    test : csr_matrix of shape (n_users, n_items)
        Test interactions (users without any get no value).
    train_interactions : csr_matrix of shape (n_users, n_items)
        Interactions excluded from the ranking.
    k : int
    user_features, item_features : csr_matrix
        The feature matrices the model was fitted with.
    num_threads : int

    Returns
    -------
    dict
        ``precision@k`` and ``auc``: float32 arrays of shape (n_users with test interactions,).
    """
    from lightfm.evaluation import auc_score, precision_at_k

    kw = {"train_interactions": train_interactions, "user_features": user_features, "item_features": item_features,
          "num_threads": num_threads}
    return {f"precision@{k}": precision_at_k(model, test, k=k, **kw), "auc": auc_score(model, test, **kw)}


def feature_part(model: LightFM, user_features: sp.csr_matrix, side: np.ndarray) -> np.ndarray:
    """The part of each user's LightFM representation that comes from side features (not the identity token).

    LightFM represents a user as ``x_u @ E`` (``x_u`` the user's feature row, weights as fitted, e.g.
    normalised; ``E`` the feature embeddings; Kula 2015, eq. 1). Keeping only the side-feature columns gives
    the part known without any interaction, the ``base`` that :mod:`recsys_lab.models.foldin` completes with a
    folded identity part.

    Parameters
    ----------
    model : LightFM
    user_features : csr_matrix of shape (n_users, n_user_features)
        The matrix the model was fitted with.
    side : ndarray of bool, shape (n_user_features,)
        True for side-feature columns (``age=...``, ``occupation=...``), False for identity tokens (``user=...``).

    Returns
    -------
    ndarray of shape (n_users, no_components), float32
    """
    side = np.asarray(side, dtype=bool)
    if side.shape != (user_features.shape[1],):
        raise ModelError(f"side: expected {user_features.shape[1]} flags (one per user feature), got {side.shape}")
    x = sp.csr_matrix(user_features) @ sp.diags(side.astype(np.float32))
    return np.asarray(x @ model.user_embeddings, dtype=np.float32)


_PARAMS = ("loss", "learning_schedule", "no_components", "learning_rate", "k", "n", "rho", "epsilon", "max_sampled",
           "item_alpha", "user_alpha")
"""LightFM's hyper-parameters (``LightFM.get_params`` less ``random_state``), saved as JSON text in the ``.npz``."""


def save_model(model: LightFM, path: str | Path) -> Path:
    """Write a fitted LightFM model atomically as arrays and JSON text (an ``.npz``: no pickle).

    The file holds the twelve state arrays LightFM keeps (embeddings, biases, their gradients and momenta), the
    hyper-parameters as JSON text (``params``) and the random generator's state (``rng_keys``, ``rng_pos``,
    ``rng_gauss``): :func:`load_model` rebuilds a model that predicts, and trains on, exactly as this one.

    Parameters
    ----------
    model : LightFM
        A fitted model.
    path : str or Path
        Destination file (``artifacts/model.npz`` in a run folder).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ModelError
        The model was never fitted.
    OSError
        The write failed; ``path`` keeps its previous content.
    """
    if any(getattr(model, name) is None for name in _STATE):
        raise ModelError("cannot save a LightFM model that was never fitted")
    params = {name: _plain(getattr(model, name)) for name in _PARAMS}
    init = model.initial_random_state
    params["random_state"] = int(init) if isinstance(init, (int, np.integer)) else None
    _, keys, pos, has_gauss, gauss = model.random_state.get_state()
    buf = io.BytesIO()
    np.savez(buf, params=np.array(json.dumps(params)), rng_keys=keys, rng_pos=np.array([pos, has_gauss]),
             rng_gauss=np.array(gauss, np.float64), **{name: getattr(model, name) for name in _STATE})
    return atomic_write_bytes(path, buf.getvalue())


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def load_model(path: str | Path) -> LightFM:
    """Rebuild a model written by :func:`save_model` (``np.load(allow_pickle=False)``: nothing in the file runs).

    Parameters
    ----------
    path : str or Path
        A file written by :func:`save_model`.

    Returns
    -------
    LightFM
        Same hyper-parameters, state arrays and random state as the saved model.

    Raises
    ------
    ModelError
        ``"<path>: cannot load model (...)"``: the file is missing, truncated or damaged, not a saved model (a
        pickle included), or its arrays do not fit its hyper-parameters or each other.
    """
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in _STATE}
            params = json.loads(str(npz["params"][()]))
            keys, pos, gauss = npz["rng_keys"], npz["rng_pos"], float(npz["rng_gauss"])
    except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelError(f"{path}: cannot load model ({type(exc).__name__}: {exc})") from exc
    if not isinstance(params, dict) or set(params) != {*_PARAMS, "random_state"}:
        raise ModelError(f"{path}: cannot load model (params must name exactly {', '.join(_PARAMS)}, random_state)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = LightFM(**params)
        model.random_state.set_state(("MT19937", keys, int(pos[0]), int(pos[1]), gauss))
    except (AssertionError, ValueError, TypeError, IndexError) as exc:
        raise ModelError(f"{path}: cannot load model (invalid hyper-parameters or random state: "
                         f"{type(exc).__name__}: {exc})") from exc
    for side in ("item", "user"):
        emb = arrays[f"{side}_embeddings"]
        if emb.ndim != 2 or emb.shape[1] != model.no_components:
            raise ModelError(f"{path}: cannot load model ({side}_embeddings has shape {emb.shape}, "
                             f"no_components is {model.no_components})")
        for name in _STATE:
            if not name.startswith(side):
                continue
            want = emb.shape if "embedding" in name else emb.shape[:1]
            value = arrays[name]
            if value.shape != want or value.dtype != np.float32:
                raise ModelError(f"{path}: cannot load model ({name} is {value.dtype} {value.shape}, expected "
                                 f"float32 {want})")
            if not np.isfinite(value).all():
                raise ModelError(f"{path}: cannot load model (non-finite values in {name})")
            setattr(model, name, np.ascontiguousarray(value))
    return model
