"""Recommendations from a saved run: a user's history and top-k, one run or two side by side; taste onboarding
from a few items; every persona's list.

The run is read through :mod:`recsys_lab.serving.saved_run` (vectors from the run folder, history and titles
from its warehouse snapshot; cached per process).

Every recommendation says how it was served (column ``path``):

``model``
    A user with training positives: the retrain's user vector. (LightFM fits on training positives only, so a
    user with none, even with low ratings before the cut-off, has an untrained random embedding: cold.)
``update``
    A user touched by ``recsys-lab update``: the vector of the latest update version (fold-in of the user's
    most recent positives, training and new; :mod:`recsys_lab.models.foldin`, the mean of the items' embeddings shrunk
    toward the average trained user by one item's weight).
``fold-in``
    A user without training positives who has positives in the snapshot (after the cut-off) or in updates,
    or a set of onboarding items: fold-in of those items. Never the untrained random embedding of a cold user.
``popularity``
    Nothing to fold in (an unknown user, no known onboarding item): the run's most-popular items (training
    positives per item), with a :class:`ColdStartWarning`.

``k`` must be a positive integer (:class:`~recsys_lab.errors.ConfigError` otherwise); a ``k`` larger than the items
left to recommend (the catalogue less the excluded items) is clamped: the list is shorter, with a
:class:`~recsys_lab.serving.saved_run.ShortListWarning`.

Updates (``recsys-lab update``) are written and read by :mod:`recsys_lab.serving.updates`.
"""

from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from recsys_lab.errors import ConfigError
from recsys_lab.models import foldin
from recsys_lab.serving.saved_run import (UPDATE_WINDOW, ColdStartWarning, ServedRun, ShortListWarning, check_k,
                                          served_run)
from recsys_lab.serving.updates import load_version

__all__ = ["recommend", "user_history", "compare_recommendations", "recommend_for_items", "persona_lists"]


def user_history(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", n: int = 10) -> pl.DataFrame:
    """The user's last ``n`` interactions before the run's training cut-off.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id (as in the data).
    run : str
        Run reference (``latest``, ``production``, a run id or a unique prefix).
    n : int
        How many interactions.

    Returns
    -------
    pl.DataFrame
        ``ts, item_id, title, weight``, newest first, at most ``n`` rows.

    Raises
    ------
    RunError
        Unknown run, missing artifacts or snapshot, or a user id of the wrong type.
    ConfigError
        ``n`` is not an integer >= 0.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"must be an integer >= 0, got {n!r}", parameter="n")
    m = served_run(runs_dir, run)
    user_id = m.user_key(user_id)
    if m.seen is not None:  # the run's own training interactions (any split protocol)
        hit = _row(m, user_id)
        items = m.item_ids[m.seen[hit[0]].indices] if len(hit) else m.item_ids[:0]
        return m.sql("SELECT i.ts, i.item_id, it.title, i.weight FROM interactions i JOIN items it "
                     "USING (item_id) WHERE i.user_id = ? AND i.item_id IN (SELECT unnest(?)) "
                     "ORDER BY i.ts DESC NULLS LAST, i.item_id LIMIT ?", [user_id, items.tolist(), int(n)])
    return m.sql("SELECT i.ts, i.item_id, it.title, i.weight FROM interactions i JOIN items it USING (item_id) "
                 "WHERE i.user_id = ? AND i.ts < ?::TIMESTAMPTZ ORDER BY i.ts DESC LIMIT ?",
                 [user_id, m.cutoff, int(n)])


def _row(m: ServedRun, user_id: int | str) -> np.ndarray:
    """The user's internal index as a 0- or 1-element array (empty when the run does not know the user)."""
    idx, ok = m.users.lookup([user_id])
    return idx[ok]


def _served(m: ServedRun, vec: np.ndarray, exclude: np.ndarray, k: int, path: str,
            item_vecs: np.ndarray | None = None) -> pl.DataFrame:
    """Top-k of one user vector against ``item_vecs`` (default the run's) as a frame with titles and the path."""
    exclude = np.unique(exclude)
    items, scores = foldin.top_k_one(vec, m.item_vecs if item_vecs is None else item_vecs, k, exclude=exclude)
    if len(items) < k:
        warnings.warn(f"run {m.run_id}: k={k} but only {len(items)} item(s) left to recommend ({len(m.item_ids)} in "
                      f"the catalogue, {len(exclude)} excluded): the list is shorter", ShortListWarning, stacklevel=3)
    ids = m.item_ids[items]
    out = pl.DataFrame({"rank": np.arange(1, len(ids) + 1), "item_id": ids, "score": scores.astype(np.float32),
                        "path": [path] * len(ids)})
    return out.join(m.titles(ids), on="item_id", how="left").select("rank", "item_id", "title", "score", "path")


def _popular(m: ServedRun, exclude: np.ndarray, k: int, why: str) -> pl.DataFrame:
    warnings.warn(f"run {m.run_id}: {why}: served the most-popular items", ColdStartWarning, stacklevel=3)
    return _served(m, np.ones(1, np.float32), exclude, k, "popularity", m.popularity()[:, None])


def recommend(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", k: int = 10,
              version: str | None = "latest") -> pl.DataFrame:
    """Top-k items for one user (exact), through the serving path the user needs.

    A user with training positives gets the run's vector, or the blend's when the run saved one (items seen
    before the cut-off excluded); a user touched by an update gets the latest update's vector (never the blend);
    any other user gets a fold-in of the positives the snapshot and updates hold for them, else the most-popular
    items: never the untrained random embedding.
    Items the user interacted with are excluded.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id (as in the data); unknown ids are served most-popular with a warning.
    run : str
        Run reference (``latest``, ``production``, a run id or a unique prefix).
    k : int
        How many items.
    version : str or None
        Update version (folder name under ``artifacts/updates/``), ``"latest"`` (default) or None (ignore
        updates).

    Returns
    -------
    pl.DataFrame
        ``rank (1-based), item_id, title, score, path`` with k rows; ``path`` is ``model``, ``blend``, ``update``,
        ``fold-in`` or ``popularity`` (see the module docstring). Popularity scores are training counts.

    Raises
    ------
    RunError
        Unknown run or update version, missing artifacts, or a user id of the wrong type.
    ConfigError
        ``k`` is not an integer >= 1.

    Warns
    -----
    ColdStartWarning
        Served most-popular (nothing to fold in).
    ShortListWarning
        Fewer than ``k`` items left to recommend.
    """
    k = check_k(k)
    m = served_run(runs_dir, run)
    user_id = m.user_key(user_id)
    upd = load_version(m, version)
    extra = upd.interactions.filter(pl.col("user_id") == user_id) if upd is not None else None
    extra_seen = np.empty(0, np.int64)
    if extra is not None and extra.height:
        e_idx, e_ok = m.items.lookup(extra["item_id"].to_numpy())
        extra_seen = e_idx[e_ok]
    rows = m.user_rows(user_id)
    all_seen = m.items.lookup(rows["item_id"].to_numpy())[0]
    if upd is not None and user_id in upd.index:
        return _served(m, upd.user_vecs[upd.index[user_id]], np.r_[all_seen, extra_seen], k, "update")
    hit = _row(m, user_id)
    # LightFM fits on training positives only: without one, the user's embedding is its random initialisation
    if m.positives is not None:
        if len(hit) and m.positives[hit[0]].nnz:
            seen, blend = np.r_[m.seen[hit[0]].indices, extra_seen], m.blend()
            if blend is not None:  # the run was trained with rank.serve = "blend"
                return _served(m, blend.user_vecs[hit[0]], seen, k, "blend", blend.item_vecs)
            return _served(m, m.user_vecs[hit[0]], seen, k, "model")
    else:  # a run saved before artifacts/split.npz: its training side is "before the cut-off"
        cut_us = int(datetime.fromisoformat(m.cutoff).timestamp() * 1_000_000) if m.cutoff else None
        before = rows.filter(pl.col("ts").dt.epoch("us") < cut_us) if cut_us is not None else rows
        if len(hit) and before.filter(m.positive()).height:
            seen = m.items.lookup(before["item_id"].to_numpy())[0]
            return _served(m, m.user_vecs[hit[0]], np.r_[seen, extra_seen], k, "model")
    history = rows if extra is None else pl.concat([rows, extra.select(rows.columns)], how="vertical_relaxed")
    picks = m.recent_positives(history, UPDATE_WINDOW)["item_idx"].to_numpy()
    if len(picks):
        return _served(m, m.foldin().user(picks), np.r_[all_seen, extra_seen], k, "fold-in")
    why = f"user_id {user_id!r} has no positive interaction" if len(hit) or history.height else \
        f"unknown user_id {user_id!r}"
    return _popular(m, np.r_[all_seen, extra_seen], k, why)


def recommend_for_items(runs_dir: str | Path, items: list | np.ndarray, *, run: str = "production",
                        k: int = 10) -> pl.DataFrame:
    """Taste onboarding: top-k for a new user who picked ``items``, by fold-in (:mod:`recsys_lab.models.foldin`).

    Parameters
    ----------
    runs_dir : str or Path
    items : sequence of int or str
        External item ids, e.g. films the user likes. The picks themselves are never recommended.
    run : str
        Run reference (default ``production``).
    k : int

    Returns
    -------
    pl.DataFrame
        ``rank, item_id, title, score, path`` (``fold-in``, or ``popularity`` when no id is known).

    Warns
    -----
    ColdStartWarning
        Unknown ids (named; skipped: an id the run cannot hold, e.g. beyond 64 bits, is unknown), or none known
        (most-popular served).
    ShortListWarning
        Fewer than ``k`` items left to recommend.

    Raises
    ------
    RunError
        Unknown run or missing artifacts.
    ConfigError
        ``k`` is not an integer >= 1; ``items`` is text or not a sequence, or the picks cover the whole catalogue
        (nothing left to recommend).
    """
    k = check_k(k)
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise ConfigError(f"must be a list of item ids, got {type(items).__name__} {items!r}", parameter="items")
    m = served_run(runs_dir, run)
    raw = np.asarray(list(items), dtype=object)
    idx, ok = m.items.lookup(np.array([str(x).strip() for x in raw], dtype=str))  # ids as typed by a user
    unknown = ", ".join(map(str, raw[~ok]))
    if not ok.any():
        return _popular(m, np.empty(0, np.int64), k, f"no known item to fold in (unknown item_id(s) {unknown})")
    if not ok.all():
        warnings.warn(f"run {m.run_id}: unknown item_id(s) {unknown}: skipped", ColdStartWarning, stacklevel=2)
    if len(np.unique(idx[ok])) == len(m.item_ids):
        raise ConfigError(f"the picks cover all {len(m.item_ids)} items of run {m.run_id}: nothing left to "
                          "recommend", parameter="items")
    return _served(m, m.foldin().user(np.unique(idx[ok])), idx[ok], k, "fold-in")


def compare_recommendations(runs_dir: str | Path, user_id: int | str, *, run: str = "latest", vs: str = "production",
                            k: int = 10) -> pl.DataFrame:
    """Two runs' top-k for one user side by side with rank changes.

    Parameters
    ----------
    runs_dir : str or Path
    user_id : int or str
        External user id.
    run, vs : str
        Run references: ``a`` and ``b`` of the result.
    k : int
        Length of each list.

    Returns
    -------
    pl.DataFrame
        One row per item in either list: ``rank_a, rank_b, movement, item_id, title, score_a, score_b``
        (``a`` is ``run``, ``b`` is ``vs``; a rank is null when the item is not in that top-k).
        ``movement`` says how the item moved from ``vs`` to ``run``: ``up N``, ``down N``, ``=``, ``new``
        (only in ``run``) or ``dropped`` (only in ``vs``). Sorted by ``rank_a`` then ``rank_b``.

    Raises
    ------
    RunError
        See :func:`recommend`.
    ConfigError
        ``k`` is not an integer >= 1.
    """
    k = check_k(k)
    ra, rb = (recommend(runs_dir, user_id, run=r, k=k).drop("path") for r in (run, vs))
    titles = pl.concat([ra.select("item_id", "title"), rb.select("item_id", "title")]).unique("item_id")
    both = (ra.drop("title").rename({"rank": "rank_a", "score": "score_a"})
            .join(rb.drop("title").rename({"rank": "rank_b", "score": "score_b"}), on="item_id", how="full",
                  coalesce=True)
            .join(titles, on="item_id", how="left"))
    movement = (pl.when(pl.col("rank_b").is_null()).then(pl.lit("new"))
                .when(pl.col("rank_a").is_null()).then(pl.lit("dropped"))
                .when(pl.col("rank_a") < pl.col("rank_b")).then(pl.format("up {}", pl.col("rank_b") - pl.col("rank_a")))
                .when(pl.col("rank_a") > pl.col("rank_b")).then(pl.format("down {}", pl.col("rank_a") - pl.col("rank_b")))
                .otherwise(pl.lit("=")))
    return (both.with_columns(movement.alias("movement"))
            .sort(["rank_a", "rank_b"], nulls_last=True)
            .select("rank_a", "rank_b", "movement", "item_id", "title", "score_a", "score_b"))


# -- personas ----------------------------------------------------------------------------------------------------
def persona_lists(runs_dir: str | Path, *, run: str = "production", file: str | Path | None = None,
                  k: int = 10) -> dict[str, dict]:
    """Every persona's top-k from a run's saved item vectors by fold-in (:func:`recsys_lab.evaluation.personas.persona_lists`).

    Parameters
    ----------
    runs_dir : str or Path
    run : str
        Run reference (default ``production``).
    file : str or Path or None
        Persona file (default: the shipped MovieLens personas).
    k : int

    Returns
    -------
    dict
        ``{name: {"description", "attributes", "items", "unknown", "top": [...]}}`` as in ``personas.json``.

    Raises
    ------
    RunError
        Unknown run or missing artifacts.
    DataFileError
        Unreadable persona file.
    ConfigError
        ``k`` is not an integer >= 1.
    """
    from recsys_lab.evaluation import personas

    k = check_k(k)
    people = personas.load_personas(file)  # a bad file is named before the run is read
    m = served_run(runs_dir, run)
    titles = m.sql("SELECT item_id, title FROM items", [])
    lookup = dict(zip(titles["item_id"].to_list(), titles["title"].to_list()))
    return personas.persona_lists(people, m.item_vecs, m.item_ids, lookup, k=k)
