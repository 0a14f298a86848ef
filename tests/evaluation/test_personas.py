"""Persona files, fold-in lists and moves against production."""

import numpy as np
import pytest

from recsys_lab.evaluation import personas
from recsys_lab.errors import DataFileError
from recsys_lab.report.tables import persona_table


def test_shipped_movielens_personas_load():
    people = personas.load_personas()
    names = [p.name for p in people]
    assert {"horror-fan", "parent-kids", "heavy-drama", "film-noir-only", "new-user-3-picks"} <= set(names)
    assert next(p for p in people if p.name == "new-user-3-picks").items == (50, 172, 181)


@pytest.mark.parametrize("text, message", [
    ("x = 1", "no \\[\\[persona\\]\\] entry"),
    ('[[persona]]\ndescription = "d"\nitems = [1]', "persona #1 has no name"),
    ('[[persona]]\nname = "a"', "persona 'a' has no items and no titles"),
    ('[[persona]]\nname = "a"\nitems = [1]\n[[persona]]\nname = "a"\nitems = [2]', "appears twice"),
    ('[[persona]]\nname = "a"\nitem = [1]', "unknown key"),
    ("[[persona", "not valid TOML"),
])
def test_bad_persona_file_names_the_problem(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(DataFileError, match=message):
        personas.load_personas(path)


def test_missing_persona_file_is_named(tmp_path):
    with pytest.raises(DataFileError, match="nope.toml"):
        personas.load_personas(tmp_path / "nope.toml")


def test_persona_lists_fold_in_ids_and_titles_and_never_recommend_picks(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[[persona]]\nname = "a"\nitems = [10, 99]\ntitles = ["twenty "]\n')
    ids = np.array([10, 20, 30, 40])
    # items 10 and 20 point one way, 30 the same way with a larger norm, 40 the other way; last column: bias
    vecs = np.array([[1, 0, 0], [1, 0, 0], [2, 0, 0], [-1, 0, 0]], dtype=np.float32)
    titles = {10: "Ten", 20: "Twenty", 30: "Thirty", 40: "Forty"}
    out = personas.persona_lists(personas.load_personas(path), vecs, ids, titles, k=2)["a"]
    assert out["items"] == [10, 20] and out["unknown"] == ["99"]
    assert [r["item_id"] for r in out["top"]] == [30, 40]
    assert out["top"][0]["title"] == "Thirty"


def test_moves_new_dropped_up_down():
    mine = [{"rank": 1, "item_id": 3, "title": "c"}, {"rank": 2, "item_id": 1, "title": "a"},
            {"rank": 3, "item_id": 4, "title": "d"}]
    theirs = [{"rank": 1, "item_id": 1, "title": "a"}, {"rank": 2, "item_id": 2, "title": "b"},
              {"rank": 3, "item_id": 3, "title": "c"}]
    got = {r["item_id"]: r["move"] for r in personas.moves(mine, theirs)}
    assert got == {3: "up 2", 1: "down 1", 4: "new", 2: "dropped"}
    table = persona_table({"p": {"top": mine}}, {"p": {"top": theirs}})
    assert table["move"].to_list() == ["up 2", "down 1", "new", "dropped"]


@pytest.mark.parametrize("rank, rank_vs, expected", [(1, 3, "up 2"), (4, 1, "down 3"), (2, 2, "="), (1, None, "new"),
                                                     (None, 5, "dropped"), (None, None, "")])
def test_the_rank_move_rule(rank, rank_vs, expected):
    assert personas.move(rank, rank_vs) == expected
