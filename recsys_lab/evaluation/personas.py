"""Personas: a TOML file format, the shipped MovieLens personas, and their top-k by fold-in.

A persona is a made-up user a reader can judge at a glance (a horror fan, a parent picking children's films,
a one-genre viewer, a new user with three picks). Run through every model, its list shows qualitatively what
a metric hides; stored per run (``personas.json``), it shows what a retrain changed next to production.

File format (UTF-8 TOML; ``movielens.toml`` in this package is the example; every value of the type shown)::

    [[persona]]
    name = "horror-fan"                      # unique, required
    description = "Watches horror."          # optional
    items = [183, 185]                       # external item ids, and/or
    titles = ["Psycho (1960)"]               # exact titles (case-insensitive)
    [persona.attributes]                     # optional, free key = value pairs (shown, not used)
    age = 24

The persona's vector is a fold-in of its items into the run's frozen item space (:class:`recsys_lab.models.foldin.FoldIn`,
the same path as onboarding a new user); its own items are never recommended.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from recsys_lab.models import foldin
from recsys_lab.errors import ConfigError, DataFileError

__all__ = ["Persona", "load_personas", "SHIPPED", "resolve_items", "persona_lists", "moves", "move"]

SHIPPED = "movielens"
"""Name of the shipped persona file (``recsys_lab/resources/personas/movielens.toml``)."""


@dataclass(frozen=True)
class Persona:
    """One persona: ``name``, ``description``, ``items`` (external ids), ``titles``, ``attributes``."""

    name: str
    description: str = ""
    items: tuple = ()
    titles: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict)


def load_personas(path: str | Path | None = None) -> list[Persona]:
    """Read a persona file (UTF-8 TOML; see the module docstring for the format).

    Parameters
    ----------
    path : str or Path or None
        A TOML file, or None for the shipped MovieLens personas.

    Returns
    -------
    list of Persona
        In file order.

    Raises
    ------
    DataFileError
        Missing or unreadable file, not UTF-8, not TOML, no ``[[persona]]``, a persona without a name or without
        any item, a duplicate name, an unknown key, or a value of the wrong type (``items`` not a list of integer
        or text ids, an integer id beyond 64 bits, ``titles`` not a list of text, ``description`` not text,
        ``attributes`` not a table); the message names the file, the persona and the key.
    """
    if path is None:
        where = f"{SHIPPED}.toml"
        data = resources.files("recsys_lab.resources").joinpath("personas", where).read_bytes()
    else:
        where = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise DataFileError(where, f"cannot read the persona file ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataFileError(where, f"not UTF-8 text (byte 0x{data[exc.start]:02x} cannot be decoded)",
                            line=line) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DataFileError(where, f"not valid TOML: {exc}") from exc
    entries = doc.get("persona")
    if not isinstance(entries, list) or not entries:
        raise DataFileError(where, "no [[persona]] entry")
    out, seen = [], set()
    for n, entry in enumerate(entries, 1):
        persona = _parse_persona(entry, n, where)
        if persona.name in seen:
            raise DataFileError(where, f"persona {persona.name!r} appears twice")
        seen.add(persona.name)
        out.append(persona)
    return out


_KEYS = ("name", "description", "items", "titles", "attributes")


def _parse_persona(entry: Any, n: int, where: str) -> Persona:
    """One ``[[persona]]`` table, every value of its type (DataFileError naming the persona and the key)."""
    if not isinstance(entry, dict):
        raise DataFileError(where, f"persona #{n} is not a table ([[persona]]) but {_kind(entry)} {entry!r}")
    name = entry.get("name")
    if name is not None and not isinstance(name, str):
        raise DataFileError(where, f"persona #{n}, key 'name': must be text, got {_kind(name)} {name!r}")
    if not isinstance(name, str) or not name.strip():
        raise DataFileError(where, f"persona #{n} has no name")
    unknown = set(entry) - set(_KEYS)
    if unknown:
        raise DataFileError(where, f"persona {name!r}: unknown key(s) {sorted(unknown)}; expected "
                            f"{', '.join(_KEYS)}")

    def bad(key: str, what: str, value: Any) -> DataFileError:
        return DataFileError(where, f"persona {name!r}, key {key!r}: must be {what}, got {_kind(value)} {value!r}")

    items, titles = entry.get("items", []), entry.get("titles", [])
    if not isinstance(items, list):
        raise bad("items", "a list of item ids, e.g. [50, 172]", items)
    for j, x in enumerate(items):
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            raise bad(f"items[{j}]", "an item id (an integer or text)", x)
        if isinstance(x, int) and not -2**63 <= x < 2**63:
            raise bad(f"items[{j}]", "an item id within 64 bits", x)
    if not isinstance(titles, list):
        raise bad("titles", 'a list of titles, e.g. ["Psycho (1960)"]', titles)
    for j, t in enumerate(titles):
        if not isinstance(t, str):
            raise bad(f"titles[{j}]", "a title (text)", t)
    description, attributes = entry.get("description", ""), entry.get("attributes", {})
    if not isinstance(description, str):
        raise bad("description", "text", description)
    if not isinstance(attributes, dict):
        raise bad("attributes", "a table of key = value pairs ([persona.attributes])", attributes)
    if not items and not titles:
        raise DataFileError(where, f"persona {name!r} has no items and no titles")
    return Persona(name=name, description=description, items=tuple(items), titles=tuple(titles),
                   attributes=dict(attributes))


def _kind(value: Any) -> str:
    """The TOML kind of a parsed value, for messages."""
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "text", list: "an array", dict: "a table"}
    return next((label for t, label in names.items() if isinstance(value, t)), "a date or time")


def resolve_items(persona: Persona, item_ids: np.ndarray, titles: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """A persona's items as internal indices of a run's item space.

    Parameters
    ----------
    persona : Persona
    item_ids : ndarray of shape (n_items,)
        The run's external item ids, sorted (index order).
    titles : dict
        Lower-cased title -> external item id.

    Returns
    -------
    index : ndarray of shape (n,), int64
        Known items, unique, in index order.
    unknown : list of str
        Ids and titles the run does not know.
    """
    ids = list(persona.items)
    unknown: list[str] = []
    for t in persona.titles:
        hit = titles.get(t.strip().lower())
        if hit is None:
            unknown.append(t)
        else:
            ids.append(hit)
    found = []
    for x in ids:
        try:
            key = np.asarray([x]).astype(item_ids.dtype)
        except (TypeError, ValueError):
            unknown.append(str(x))
            continue
        pos = int(np.searchsorted(item_ids, key[0]))
        if pos < len(item_ids) and item_ids[pos] == key[0]:
            found.append(pos)
        else:
            unknown.append(str(x))
    return np.unique(np.asarray(found, dtype=np.int64)), unknown


def persona_lists(personas: list[Persona], item_vecs: np.ndarray, item_ids: np.ndarray, titles: dict[Any, str],
                  *, k: int = 10, method: str = foldin.DEFAULT_METHOD) -> dict[str, dict]:
    """Every persona's top-k in a run's item space, by fold-in of its items.

    Parameters
    ----------
    personas : list of Persona
    item_vecs : ndarray of shape (n_items, d), float32
        The run's folded item vectors.
    item_ids : ndarray of shape (n_items,)
        External ids in index order.
    titles : dict
        External item id -> title (to title the lists and to find the ``titles`` of the persona file,
        case-insensitively).
    k : int
    method : str
        Fold-in method (:data:`recsys_lab.models.foldin.METHODS`).

    Returns
    -------
    dict
        ``{name: {"description", "attributes", "items": [ids used], "unknown": [...],
        "top": [{"rank", "item_id", "title", "score"}, ...]}}``, JSON-ready (``personas.json``). A persona with
        no known item gets an empty ``top``.

    Raises
    ------
    ConfigError
        No persona given.
    """
    if not personas:
        raise ConfigError("no persona to run", parameter="personas")
    by_id = {_plain(i): str(t) for i, t in titles.items() if t is not None}
    lookup = {t.strip().lower(): i for i, t in by_id.items()}
    folder = foldin.FoldIn(np.asarray(item_vecs, dtype=np.float32), method=method)
    out: dict[str, dict] = {}
    for p in personas:
        idx, unknown = resolve_items(p, item_ids, lookup)
        top: list[dict] = []
        if len(idx):
            items, scores = foldin.top_k_one(folder.user(idx), item_vecs, k, exclude=idx)
            top = [{"rank": r + 1, "item_id": _plain(item_ids[i]), "title": by_id.get(_plain(item_ids[i]), ""),
                    "score": float(s)} for r, (i, s) in enumerate(zip(items, scores))]
        out[p.name] = {"description": p.description, "attributes": p.attributes,
                       "items": [_plain(item_ids[i]) for i in idx], "unknown": unknown, "top": top}
    return out


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def moves(mine: list[dict], theirs: list[dict]) -> list[dict]:
    """One persona's list next to another run's, with moves.

    Parameters
    ----------
    mine, theirs : list of dict
        ``top`` lists of :func:`persona_lists` (this run, and the one compared against, e.g. production).

    Returns
    -------
    list of dict
        One row per item in either list: ``rank, rank_vs, move, item_id, title``; ``move`` is ``new`` (only
        in this run), ``dropped`` (only in the other), ``up N``, ``down N`` or ``=``. This run's items first in
        rank order, then the dropped ones.
    """
    ra = {r["item_id"]: r for r in mine}
    rb = {r["item_id"]: r for r in theirs}
    rows = []
    for r in mine:
        other = rb.get(r["item_id"])
        rank_vs = other["rank"] if other else None
        rows.append({"rank": r["rank"], "rank_vs": rank_vs, "move": move(r["rank"], rank_vs),
                     "item_id": r["item_id"], "title": r["title"]})
    rows += [{"rank": None, "rank_vs": r["rank"], "move": move(None, r["rank"]), "item_id": r["item_id"],
              "title": r["title"]} for r in theirs if r["item_id"] not in ra]
    return rows


def move(rank: int | None, rank_vs: int | None) -> str:
    """How an item moved from one list to another: the rank-move rule, written once.

    Parameters
    ----------
    rank : int or None
        Its rank in this list (1 = first); None when it is not in it.
    rank_vs : int or None
        Its rank in the list compared against (e.g. production's); None when it is not in that one.

    Returns
    -------
    str
        ``new`` (only in this list), ``dropped`` (only in the other), ``up N`` (N places higher here), ``down N``
        or ``=``; empty when it is in neither.
    """
    if rank is None:
        return "" if rank_vs is None else "dropped"
    if rank_vs is None:
        return "new"
    return f"up {rank_vs - rank}" if rank_vs > rank else f"down {rank - rank_vs}" if rank_vs < rank else "="
