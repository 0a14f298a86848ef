"""What the comparison page shows, as plain data: two runs' lists for a user, a few picked items or a persona, side
by side with moves (:func:`recsys_lab.evaluation.personas.move`, the one rank-move rule), overlap@k and the user's
recent history; the runs to choose from; title search. :mod:`recsys_lab.serving.app` serves it as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recsys_lab.errors import ConfigError, RecsysLabError
from recsys_lab.evaluation import personas as people
from recsys_lab.runs.registry import production_id, resolve, table
from recsys_lab.serving.recommend import recommend, recommend_for_items, user_history
from recsys_lab.serving.saved_run import ServedRun, served_run

__all__ = ["runs_choice", "search_titles", "persona_names", "compare"]


def runs_choice(runs_dir: str | Path) -> dict[str, Any]:
    """The runs the page offers and its default pair.

    Parameters
    ----------
    runs_dir : str or Path

    Returns
    -------
    dict
        ``runs``: ``[{run_id, status, gate_passed, production}]`` newest first; ``a``: the latest passed candidate
        (the newest succeeded run that passed its gate and is not production; production when there is none);
        ``b``: production (the latest passed run when there is none).
    """
    t = table(runs_dir)
    prod = production_id(runs_dir)
    runs = [{"run_id": r["run_id"], "status": r["status"], "gate_passed": r["gate_passed"],
             "production": r["run_id"] == prod} for r in t.iter_rows(named=True)]
    passed = [r["run_id"] for r in runs if r["status"] == "succeeded" and r["gate_passed"] is not False]
    candidates = [r for r in passed if r != prod]
    b = prod or (passed[0] if passed else None)
    a = candidates[0] if candidates else b
    return {"runs": runs, "a": a, "b": b}


def search_titles(m: ServedRun, query: str, limit: int = 20) -> list[dict[str, Any]]:
    """Items whose title contains ``query`` (case-insensitive), most popular first.

    Parameters
    ----------
    m : ServedRun
        A preloaded run (:meth:`~recsys_lab.serving.saved_run.ServedRun.preload`).
    query : str
    limit : int

    Returns
    -------
    list of dict
        ``item_id, title``.
    """
    titles = m.titles(m.item_ids)
    q = query.strip().lower()
    if not q:
        return []
    hits = titles.filter(pl.col("title").str.to_lowercase().str.contains(q, literal=True))
    pop = m.popularity()
    idx, _ = m.items.lookup(hits["item_id"].to_numpy())
    hits = hits.with_columns(pl.Series("_pop", pop[idx])).sort("_pop", descending=True).head(limit)
    return hits.select("item_id", "title").to_dicts()


def persona_names() -> list[dict[str, str]]:
    """The shipped personas: ``name, description``.

    Returns
    -------
    list of dict
    """
    return [{"name": p.name, "description": p.description} for p in people.load_personas()]


def _persona_items(runs_dir: Path, run: str, name: str) -> list:
    match = [p for p in people.load_personas() if p.name == name]
    if not match:
        raise ConfigError(f"unknown persona {name!r}", parameter="persona")
    m = served_run(runs_dir, run)
    titles = m.titles(m.item_ids)
    lookup = {str(t).strip().lower(): i for i, t in zip(titles["item_id"].to_list(), titles["title"].to_list())}
    idx, _ = people.resolve_items(match[0], m.item_ids, lookup)
    return [x.item() for x in m.item_ids[idx]]


def _side(runs_dir: Path, run: str, k: int, user: str | None, items: list | None, persona: str | None
          ) -> tuple[pl.DataFrame, list]:
    """One run's list and the items it was asked for (for ``items`` and ``persona``)."""
    served_run(runs_dir, run).preload()
    if user is not None:
        return recommend(runs_dir, user, run=run, k=k), []
    picks = items if items is not None else _persona_items(runs_dir, run, persona or "")
    if not picks:
        raise ConfigError("no known item to start from", parameter="items" if items is not None else "persona")
    return recommend_for_items(runs_dir, picks, run=run, k=k), picks


def compare(runs_dir: str | Path, a: str, b: str, *, k: int = 10, user: str | None = None,
            items: list | None = None, persona: str | None = None) -> dict[str, Any]:
    """Two runs' top-k side by side for one user, a few picked items or a persona.

    Parameters
    ----------
    runs_dir : str or Path
    a, b : str
        Run references (``a`` the candidate, ``b`` what it is compared against, e.g. production).
    k : int
    user : str, optional
        External user id.
    items : list, optional
        Picked external item ids (a new user).
    persona : str, optional
        A shipped persona's name.

    Returns
    -------
    dict
        ``a``, ``b``: ``{run_id, path, report}``; ``rows``: one per item in either list, ``rank_a, rank_b, move,
        item_id, title, score_a, score_b`` (``move`` how the item moved from ``b`` to ``a``); ``overlap`` (items in
        both / k); ``history`` (the user's last interactions before ``b``'s cut-off) and ``picks``.

    Raises
    ------
    RunError
        Unknown run, or a user id of the wrong type.
    ConfigError
        Not exactly one of ``user``, ``items``, ``persona``; an unknown persona; ``k`` out of range.
    """
    runs_dir = Path(runs_dir)
    if sum(x is not None for x in (user, items, persona)) != 1:
        raise ConfigError("give exactly one of user, items or persona", parameter="user")
    ids = {side: resolve(runs_dir, ref).name for side, ref in (("a", a), ("b", b))}
    (la, picks), (lb, _) = (_side(runs_dir, ids[s], k, user, items, persona) for s in ("a", "b"))
    ra = {r["item_id"]: r for r in la.to_dicts()}
    rb = {r["item_id"]: r for r in lb.to_dicts()}
    rows = []
    for item in list(ra) + [i for i in rb if i not in ra]:
        x, y = ra.get(item), rb.get(item)
        rank_a, rank_b = (x or {}).get("rank"), (y or {}).get("rank")
        rows.append({"rank_a": rank_a, "rank_b": rank_b, "move": people.move(rank_a, rank_b), "item_id": item,
                     "title": (x or y)["title"], "score_a": _num((x or {}).get("score")),
                     "score_b": _num((y or {}).get("score"))})
    history: list[dict] = []
    if user is not None:
        try:
            h = user_history(runs_dir, user, run=ids["b"], n=10)
            history = h.with_columns(pl.col("ts").cast(pl.Utf8)).to_dicts()
        except RecsysLabError:
            history = []
    side = {s: {"run_id": ids[s], "path": (frame["path"][0] if frame.height else None),
                "report": f"/runs/{ids[s]}/report.html"} for s, frame in (("a", la), ("b", lb))}
    return {**side, "k": k, "rows": rows, "overlap": len(set(ra) & set(rb)) / k, "history": history,
            "picks": picks}


def _num(x: Any) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)
