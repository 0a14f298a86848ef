"""Persona files, fold-in lists and moves against production."""

import numpy as np
import pytest

from recsys_lab.errors import DataFileError
from recsys_lab.evaluation import personas
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


@pytest.mark.parametrize("data, message", [
    # a number where a list of items is expected (was TypeError: 'int' object is not iterable)
    (b'[[persona]]\nname = "a"\nitems = 5\n', r"persona 'a', key 'items': must be a list of item ids, .*got an "
                                             r"integer 5$"),
    # items as one text where ids are integers (was read as the characters '1', ',', '2')
    (b'[[persona]]\nname = "a"\nitems = "1,2"\n', r"persona 'a', key 'items': must be a list .*got text '1,2'$"),
    # an id that is neither integer nor text (1.5 was truncated to item 1), or beyond 64 bits (was OverflowError)
    (b'[[persona]]\nname = "a"\nitems = [1, 1.5]\n', r"persona 'a', key 'items\[1\]': must be an item id "
                                                    r"\(an integer or text\), got a float 1.5$"),
    (b'[[persona]]\nname = "a"\nitems = [99999999999999999999]\n', r"persona 'a', key 'items\[0\]': must be an item id within "
                                                                   r"64 bits"),
    (b'[[persona]]\nname = "a"\nitems = [[1]]\n', r"persona 'a', key 'items\[0\]': must be an item id .*got an array \[1\]"),
    # a missing name, and a name of the wrong type
    (b'[[persona]]\ndescription = "d"\ntitles = ["A"]\n', r"persona #1 has no name$"),
    (b'[[persona]]\nname = 7\nitems = [1]\n', r"persona #1, key 'name': must be text, got an integer 7$"),
    # other keys of the wrong type (titles, description, attributes: were TypeErrors or silently str()-ed)
    (b'[[persona]]\nname = "a"\ntitles = 5\n', r"persona 'a', key 'titles': must be a list of titles"),
    (b'[[persona]]\nname = "a"\nitems = [1]\ndescription = [1]\n', r"persona 'a', key 'description': must be text"),
    (b'[[persona]]\nname = "a"\nitems = [1]\nattributes = 5\n', r"persona 'a', key 'attributes': must be a table"),
    (b'persona = [1, 2]\n', r"persona #1 is not a table \(\[\[persona\]\]\) but an integer 1$"),
    # non-UTF-8 bytes (was UnicodeDecodeError) and invalid TOML
    (b'[[persona]]\nname = "caf\xe9"\nitems = [1]\n', r", line 2: not UTF-8 text \(byte 0xe9 cannot be decoded\)$"),
    (b'[[persona]]\nname = "a"\nitems = [1,\n', r"not valid TOML: "),
])
def test_a_persona_file_with_a_wrong_type_or_encoding_is_a_typed_error_naming_file_persona_and_key(tmp_path, data,
                                                                                                     message):
    path = tmp_path / "p.toml"
    path.write_bytes(data)
    with pytest.raises(DataFileError, match=f"^{path}" + (message if message.startswith(",") else ": " + message)):
        personas.load_personas(path)


def test_a_persona_file_may_start_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "p.toml"
    path.write_bytes(b'\xef\xbb\xbf[[persona]]\nname = "a"\nitems = [1, "x"]\n')
    assert personas.load_personas(path)[0].items == (1, "x")


def test_a_bad_persona_file_is_one_line_through_the_cli(tmp_path, capsys):
    from recsys_lab.cli.main import main

    path = tmp_path / "p.toml"
    path.write_bytes(b'[[persona]]\nname = "a"\nitems = 5\n')
    assert main(["personas", "--file", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"error: {path}: persona 'a', key 'items': must be a list of item ids, "
                                        "e.g. [50, 172], got an integer 5"]


@pytest.mark.parametrize("rank, rank_vs, expected", [(1, 3, "up 2"), (4, 1, "down 3"), (2, 2, "="), (1, None, "new"),
                                                     (None, 5, "dropped"), (None, None, "")])
def test_the_rank_move_rule(rank, rank_vs, expected):
    assert personas.move(rank, rank_vs) == expected
