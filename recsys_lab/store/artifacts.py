"""A run's ``artifacts/`` folder: the only reader and writer of its files.

==========================  ===================================================================================
``id_maps.npz``             ``user_ids``, ``item_ids``: external ids by internal index (sorted, unique)
``embeddings.npz``          ``user_vecs`` (n_users, d + 1), ``item_vecs`` (n_items, d + 1), float32, biases folded
                            in (:func:`recsys_lab.models.lightfm.embeddings`)
``split.npz``               CSR arrays ``seen_indptr``, ``seen_indices`` (every training interaction) and
                            ``pos_indptr``, ``pos_indices`` (training positives), in the run's index space
``features.npz``            ``user_tokens``, ``item_tokens``: the feature names of the model's columns
``model.npz``               the fitted LightFM model as arrays (:func:`recsys_lab.models.lightfm.save_model`)
``index.npz``               the MIPS index as arrays, when the retrain built one (:meth:`recsys_lab.retrieval.ann.MipsIndex.save`)
``blend.npz``               ``user_vecs``, ``item_vecs`` (float32, one row per user / item) of the ranking stage's
                            blend and ``weights`` (JSON text), when the run serves it (``rank.serve = "blend"``)
``per_user_metrics.parquet`` metrics per evaluated user (read by :func:`recsys_lab.runs.registry.compare`)
==========================  ===================================================================================

:func:`save_artifacts` writes them (each file atomically); :func:`load_run` reads a run back as a
:class:`SavedRun`: ids and vectors at once, the rest (metrics, manifest, params, split, model, index, blend) when
first asked for. Every file that is missing, truncated or damaged raises one error, :class:`~recsys_lab.errors.RunError`
``"<path>: cannot read (...)"`` (JSON files through :func:`recsys_lab.store.folder.read_json`, which names the file
the same way). Serving, the gate's production evidence and personas all read runs through here. The ``.npz``
primitives :func:`read_arrays` and :func:`write_arrays` live in :mod:`recsys_lab.store.npz`.

A run folder is data, never code: ``.npz`` files are read with ``allow_pickle=False``; the ``model.pkl`` of older
runs is never unpickled (:meth:`SavedRun.model` refuses it). ``load_run(folder, verify=True)`` reads every artifact
at once (:meth:`SavedRun.verify`): the gate's production evidence fails closed.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import scipy.sparse as sp

from recsys_lab._fs import atomic_write_bytes
from recsys_lab.errors import DataError, ModelError, RunError
from recsys_lab.features import IdMap
from recsys_lab.models import lightfm
from recsys_lab.retrieval import ann
from recsys_lab.store.folder import RunFolder, read_json
from recsys_lab.store.npz import cannot_read, read_arrays, write_arrays

__all__ = ["SavedRun", "SavedSplit", "SavedBlend", "load_run", "save_artifacts", "load_id_maps", "read_arrays",
           "write_arrays", "read_per_user_metrics"]

_ID_MAPS = ("user_ids", "item_ids")
_EMBEDDINGS = ("user_vecs", "item_vecs")
_SPLIT = ("seen_indptr", "seen_indices", "pos_indptr", "pos_indices")
_FEATURES = ("user_tokens", "item_tokens")
def load_id_maps(path: str | Path) -> tuple[IdMap, IdMap]:
    """The user and item id maps of ``artifacts/id_maps.npz``.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    users, items : IdMap
        In the saved index order (:meth:`recsys_lab.features.IdMap.from_sorted`).

    Raises
    ------
    RunError
        The file is missing, truncated or damaged, or its ids are not unique and sorted.
    """
    arrays = read_arrays(path, _ID_MAPS)
    try:
        return (IdMap.from_sorted(arrays["user_ids"], "user_id"), IdMap.from_sorted(arrays["item_ids"], "item_id"))
    except DataError as exc:
        raise RunError(f"{path}: cannot read ({exc})") from exc


@dataclass(frozen=True)
class SavedSplit:
    """What a run trained on, in its index space (``artifacts/split.npz``).

    Attributes
    ----------
    seen : csr_matrix of shape (n_users, n_items), float32 ones
        Every training interaction (excluded when serving).
    positives : csr_matrix of shape (n_users, n_items), float32 ones
        Training positives (popularity, and which users have a trained vector).
    """

    seen: sp.csr_matrix
    positives: sp.csr_matrix


@dataclass(frozen=True)
class SavedBlend:
    """The ranking stage's blend a run serves (``artifacts/blend.npz``; :func:`recsys_lab.ranking.blend.blend_vectors`).

    Attributes
    ----------
    user_vecs, item_vecs : ndarray of shape (n_users, d) and (n_items, d), float32
        Their dot products rank like the blend.
    weights : dict of str to float
        The blend weights per generator.
    """

    user_vecs: np.ndarray
    item_vecs: np.ndarray
    weights: dict[str, float]


class SavedRun:
    """One finished run read back from its folder: id maps and vectors, and on demand what else it saved.

    Use :func:`load_run`. Id maps and embeddings are read at once (and checked against each other); metrics,
    manifest, params, split, model, index and blend are read the first time they are asked for, then kept.

    Parameters
    ----------
    folder : str, Path or RunFolder
        The run folder.

    Attributes
    ----------
    folder : RunFolder
    run_id : str
    users, items : IdMap
        External ids in the run's index order.
    user_vecs : ndarray of shape (n_users, d + 1), float32
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded vectors (see :func:`recsys_lab.models.lightfm.embeddings`).

    Raises
    ------
    RunError
        ``id_maps.npz`` or ``embeddings.npz`` is missing, truncated or damaged, or they disagree; the message
        names the file.
    """

    def __init__(self, folder: str | Path | RunFolder) -> None:
        self.folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
        self.run_id = self.folder.run_id
        self.users, self.items = load_id_maps(self.folder.id_maps)
        self.user_vecs, self.item_vecs = self._vectors(self.folder.embeddings)
        self._cache: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"SavedRun({self.run_id!r}, users={len(self.users)}, items={len(self.items)})"

    @property
    def path(self) -> Path:
        """The run folder."""
        return self.folder.path

    @property
    def user_ids(self) -> np.ndarray:
        """External user ids by internal index (``users.ids``)."""
        return self.users.ids

    @property
    def item_ids(self) -> np.ndarray:
        """External item ids by internal index (``items.ids``)."""
        return self.items.ids

    def _vectors(self, path: Path, *extra: str) -> tuple[np.ndarray, ...]:
        """``user_vecs``, ``item_vecs`` (one row per user / item, as many columns) and ``extra`` arrays of ``path``."""
        z = read_arrays(path, (*_EMBEDDINGS, *extra))
        for side, ids in (("user", self.users), ("item", self.items)):
            if z[f"{side}_vecs"].ndim != 2 or len(z[f"{side}_vecs"]) != len(ids):
                raise RunError(f"{path}: cannot read ({side}_vecs has shape {z[f'{side}_vecs'].shape}, "
                               f"{self.folder.id_maps.name} has {len(ids)} {side}s)")
        if z["user_vecs"].shape[1] != z["item_vecs"].shape[1]:
            raise RunError(f"{path}: cannot read (user_vecs has {z['user_vecs'].shape[1]} columns, item_vecs "
                           f"{z['item_vecs'].shape[1]})")
        return tuple(z[k] for k in (*_EMBEDDINGS, *extra))

    def _once(self, key: str, read: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = read()
        return self._cache[key]

    @property
    def metrics(self) -> dict[str, Any]:
        """``metrics.json`` (raises :class:`RunError` naming the file when missing, damaged or not an object)."""
        def read() -> dict[str, Any]:
            value = read_json(self.folder.metrics, "metrics file")
            if not isinstance(value, dict):
                raise RunError(f"{self.folder.metrics}: not a JSON object")
            return value
        return self._once("metrics", read)

    @property
    def manifest(self) -> dict[str, Any]:
        """``run.json`` (raises :class:`RunError` naming the file when missing or damaged)."""
        return self._once("manifest", self.folder.manifest)

    @property
    def params(self) -> dict[str, Any]:
        """``params.json``: the configuration the run ran with (raises :class:`RunError` naming the file)."""
        return self._once("params", lambda: read_json(self.folder.params, "params file"))

    @property
    def config(self) -> dict[str, Any]:
        """The configuration recorded in the manifest (``{}`` when it has none)."""
        return self.manifest.get("config") or {}

    @property
    def snapshot_path(self) -> Path | None:
        """The warehouse snapshot file the run read (from the manifest); None when the manifest names none."""
        snap = (self.manifest.get("data") or {}).get("snapshot")
        warehouse = (self.config.get("data") or {}).get("warehouse")
        if not snap or not warehouse:
            return None
        return Path(warehouse) / "snapshots" / f"{snap}.duckdb"

    @property
    def cutoff(self) -> str | None:
        """The split's training cut-off (ISO 8601) from the manifest, when recorded."""
        return ((self.manifest.get("data") or {}).get("split") or {}).get("cutoff")

    def split(self) -> SavedSplit | None:
        """The training interactions and positives (``artifacts/split.npz``).

        Returns
        -------
        SavedSplit or None
            None for a run saved before the file existed.

        Raises
        ------
        RunError
            The file is truncated or damaged, or its shape does not match the id maps.
        """
        def read() -> SavedSplit | None:
            path = self.folder.split
            if not path.is_file():
                return None
            z = read_arrays(path, _SPLIT)
            shape = (len(self.users), len(self.items))
            try:
                return SavedSplit(*(sp.csr_matrix((np.ones(len(z[f"{p}_indices"]), np.float32), z[f"{p}_indices"],
                                                   z[f"{p}_indptr"]), shape=shape) for p in ("seen", "pos")))
            except ValueError as exc:  # indptr / indices that do not fit the id maps
                raise cannot_read(path, exc) from exc
        return self._once("split", read)

    def tokens(self) -> tuple[list[str], list[str]]:
        """The feature names of the model's user and item columns (``artifacts/features.npz``).

        Returns
        -------
        user_tokens, item_tokens : list of str

        Raises
        ------
        RunError
            The file is missing, truncated or damaged.
        """
        z = self._once("tokens", lambda: read_arrays(self.folder.features, _FEATURES))
        return z["user_tokens"].tolist(), z["item_tokens"].tolist()

    def model(self) -> Any:
        """The fitted LightFM model, rebuilt from ``artifacts/model.npz`` (no pickle is loaded).

        Returns
        -------
        lightfm.LightFM

        Raises
        ------
        RunError
            The file is missing or damaged, or the run has only the ``model.pkl`` of older runs: it is never
            unpickled (a pickle runs the code it names when loaded).
        """
        def read() -> Any:
            path, legacy = self.folder.model, self.folder.legacy_model
            if not path.is_file() and legacy.is_file():
                raise RunError(f"{legacy}: not loaded (a pickled model can run code when it is loaded, so only "
                               f"{path.name} is read; retrain the run to write it)")
            return _typed(path, lightfm.load_model)
        return self._once("model", read)

    def index(self) -> ann.MipsIndex | None:
        """The run's MIPS index (``artifacts/index.npz``, arrays: never a pickle), or None when the retrain built none.

        Returns
        -------
        MipsIndex or None

        Raises
        ------
        RunError
            The file exists but is not a readable index.
        """
        path = self.folder.index
        return self._once("index", lambda: _typed(path, ann.load_index) if path.is_file() else None)

    def blend(self) -> SavedBlend | None:
        """The blend the run serves (``artifacts/blend.npz``), or None when it saved none.

        Returns
        -------
        SavedBlend or None

        Raises
        ------
        RunError
            The file is truncated or damaged, or its shapes do not match the id maps.
        """
        def read() -> SavedBlend | None:
            path = self.folder.blend
            if not path.is_file():
                return None
            u, i, weights = self._vectors(path, "weights")
            try:
                return SavedBlend(u, i, json.loads(str(weights)))
            except ValueError as exc:
                raise cannot_read(path, exc) from exc
        return self._once("blend", read)

    def verify(self) -> SavedRun:
        """Read every artifact of the run now (the gate's production evidence): a run with any unreadable one fails.

        Reads, besides the id maps and vectors read at load: ``split.npz`` (required here), ``features.npz``,
        ``model.npz`` (a legacy ``model.pkl`` alone fails: it is never unpickled), ``blend.npz`` when present (it is
        served) and ``metrics.json``; kept.

        Returns
        -------
        SavedRun
            ``self``.

        Raises
        ------
        RunError
            The first missing, truncated or damaged file (named).
        """
        if self.split() is None:
            raise cannot_read(self.folder.split, FileNotFoundError(self.folder.split))
        self.tokens()
        self.model()
        self.blend()
        self.metrics  # noqa: B018 - read now
        return self


def read_per_user_metrics(folder: str | Path | RunFolder) -> pl.DataFrame:
    """A run's ``artifacts/per_user_metrics.parquet``.

    Parameters
    ----------
    folder : str, Path or RunFolder
        The run folder.

    Returns
    -------
    pl.DataFrame
        ``model, user_id`` plus one column per metric, one row per (model, evaluated user).

    Raises
    ------
    RunError
        ``"<path>: cannot read the per-user metrics (...)"``: missing or damaged file.
    """
    path = (folder if isinstance(folder, RunFolder) else RunFolder(folder)).per_user_metrics
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise RunError(f"{path}: cannot read the per-user metrics ({str(exc).splitlines()[0]})") from exc


def _typed(path: Path, load: Any) -> Any:
    try:
        return load(path)
    except ModelError as exc:
        detail = str(exc).removeprefix(f"{path}: ")
        raise RunError(f"{path}: cannot read ({detail})") from exc


def load_run(folder: str | Path | RunFolder, *, verify: bool = False) -> SavedRun:
    """Read a run back from its folder (see :class:`SavedRun`).

    Parameters
    ----------
    folder : str, Path or RunFolder
        The run folder.
    verify : bool
        Read every artifact now (:meth:`SavedRun.verify`): what the gate's production evidence needs, so it
        fails closed. Default False: the rest is read when first used.

    Returns
    -------
    SavedRun
        Ids and vectors loaded; the rest read when first used (or all of it, with ``verify``).

    Raises
    ------
    RunError
        ``artifacts/id_maps.npz`` or ``artifacts/embeddings.npz`` is missing, truncated or damaged (named); with
        ``verify``, any artifact :meth:`SavedRun.verify` reads.
    """
    run = SavedRun(folder)
    return run.verify() if verify else run


def save_artifacts(folder: str | Path | RunFolder, *, users: IdMap, items: IdMap, user_vecs: np.ndarray,
                   item_vecs: np.ndarray, seen: sp.csr_matrix, positives: sp.csr_matrix, user_tokens: list[str],
                   item_tokens: list[str], model: Any, index: ann.MipsIndex | None = None,
                   per_user: pl.DataFrame | None = None, blend: SavedBlend | None = None) -> RunFolder:
    """Write a run's ``artifacts/`` (each file atomically; see the module docstring for the layout).

    Parameters
    ----------
    folder : str, Path or RunFolder
        The run folder (``artifacts/`` is created).
    users, items : IdMap
        The run's id maps.
    user_vecs : ndarray of shape (n_users, d + 1), float32
    item_vecs : ndarray of shape (n_items, d + 1), float32
        Folded vectors.
    seen : csr_matrix of shape (n_users, n_items)
        Every training interaction.
    positives : csr_matrix of shape (n_users, n_items)
        Training positives.
    user_tokens, item_tokens : list of str
        Feature names of the model's columns.
    model : lightfm.LightFM
        The fitted model.
    index : MipsIndex, optional
        The ANN index (not written when None).
    per_user : pl.DataFrame, optional
        Per-user metrics (``model, user_id`` plus one column per metric); not written when None.
    blend : SavedBlend, optional
        The blend the run serves (``blend.npz``); not written when None.

    Returns
    -------
    RunFolder
        The folder written to.

    Raises
    ------
    OSError
        A write failed (the file it was writing keeps its previous content).
    """
    folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
    folder.artifacts.mkdir(parents=True, exist_ok=True)
    write_arrays(folder.id_maps, user_ids=users.ids, item_ids=items.ids)
    write_arrays(folder.embeddings, user_vecs=user_vecs, item_vecs=item_vecs)
    write_arrays(folder.split, seen_indptr=seen.indptr, seen_indices=seen.indices, pos_indptr=positives.indptr,
              pos_indices=positives.indices)
    write_arrays(folder.features, user_tokens=np.array(user_tokens), item_tokens=np.array(item_tokens))
    lightfm.save_model(model, folder.model)
    if index is not None:
        index.save(folder.index)
    if blend is not None:
        write_arrays(folder.blend, user_vecs=np.asarray(blend.user_vecs, np.float32),
                     item_vecs=np.asarray(blend.item_vecs, np.float32), weights=np.array(json.dumps(blend.weights)))
    if per_user is not None:
        buf = io.BytesIO()
        per_user.write_parquet(buf)
        atomic_write_bytes(folder.per_user_metrics, buf.getvalue())
    return folder
