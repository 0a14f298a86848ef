"""Bad requests are one typed line naming the parameter or id, never a traceback: ``k`` below 1 or not an integer,
ids beyond 64 bits or of the wrong type, picks that cover the catalogue; a ``k`` larger than what is left is
clamped with a note."""

from __future__ import annotations

import warnings

import pytest

from recsys_lab import serving
from recsys_lab.cli.main import main
from recsys_lab.errors import ConfigError, RunError
from recsys_lab.serving.saved_run import ShortListWarning, check_k

HUGE = "99999999999999999999"  # beyond int64 (and uint64)

CALLS = {"recommend": lambda r, k: serving.recommend(r, 1, run="production", k=k),
         "recommend_for_items": lambda r, k: serving.recommend_for_items(r, [1], k=k),
         "compare_recommendations": lambda r, k: serving.compare_recommendations(r, 1, run="production", k=k),
         "similar": lambda r, k: serving.similar(r, 1, k=k),
         "persona_lists": lambda r, k: serving.persona_lists(r, run="production", k=k)}


@pytest.mark.parametrize("k", [0, -3, 2.5, "3", True])
@pytest.mark.parametrize("call", sorted(CALLS))
def test_k_below_one_or_not_an_integer_is_a_config_error_naming_k(saved, call, k):
    runs_dir, _ = saved
    with pytest.raises(ConfigError, match=f"^k: must be an integer >= 1, got {k!r}$".replace(".", r"\.")):
        CALLS[call](runs_dir, k)


def test_check_k_accepts_numpy_integers():
    import numpy as np

    assert check_k(np.int64(4)) == 4 and type(check_k(np.int32(2))) is int


def test_a_k_larger_than_what_is_left_is_clamped_with_a_note(saved):
    runs_dir, _ = saved
    with pytest.warns(ShortListWarning, match=r"k=100 but only 3 item\(s\) left to recommend \(6 in the catalogue, "
                                              r"3 excluded\)"):
        assert serving.recommend(runs_dir, 1, run="production", k=100).height == 3  # user 1 saw 3 of 6 items
    with pytest.warns(ShortListWarning, match=r"k=100 but only 5 other item\(s\)"):
        assert serving.similar(runs_dir, 1, k=100).height == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortListWarning)
        assert serving.recommend(runs_dir, 1, run="production", k=3).height == 3  # no note when k fits


def test_ids_beyond_64_bits_or_of_the_wrong_type_are_named(saved):
    runs_dir, _ = saved
    with pytest.raises(RunError, match=f"unknown item_id '{HUGE}' \\(6 items; its item ids are 64-bit integers\\)"):
        serving.similar(runs_dir, HUGE)
    with pytest.raises(RunError, match="unknown item_id 'abc' .*64-bit integers"):
        serving.similar(runs_dir, "abc")
    with pytest.raises(ConfigError, match=r"^item_id: must be one item id \(an integer or text\), got list \[1\]"):
        serving.similar(runs_dir, [1])
    with pytest.raises(RunError, match=f"user ids are integers, got {HUGE} \\(outside the 64-bit range"):
        serving.recommend(runs_dir, int(HUGE), run="production")
    with pytest.raises(RunError, match="user ids are integers, got 1.5$"):  # was served as user 1
        serving.recommend(runs_dir, 1.5, run="production")
    with pytest.raises(RunError, match=f"user ids are integers, got '{HUGE}'"):
        serving.user_history(runs_dir, HUGE, run="production")
    with pytest.raises(ConfigError, match="^n: must be an integer >= 0, got -1"):
        serving.user_history(runs_dir, 1, run="production", n=-1)
    with pytest.raises(ConfigError, match="^items: must be a list of item ids, got str '1,2'"):
        serving.recommend_for_items(runs_dir, "1,2")
    with pytest.warns(serving.ColdStartWarning, match=f"unknown item_id\\(s\\) {HUGE}"):  # onboarding skips it
        recs = serving.recommend_for_items(runs_dir, [HUGE, int(HUGE)], k=3)
    assert set(recs["path"]) == {"popularity"}


def test_picks_that_cover_the_catalogue_are_a_clear_error(saved):
    runs_dir, _ = saved
    with pytest.raises(ConfigError, match="^items: the picks cover all 6 items of run .*: nothing left to recommend"):
        serving.recommend_for_items(runs_dir, [1, 2, 3, 4, 5, 6, 6])
    with pytest.warns(ShortListWarning):
        assert serving.recommend_for_items(runs_dir, [1, 2, 3, 4, 5], k=3)["item_id"].to_list() == [6]


@pytest.mark.parametrize("argv, code, message", [
    (["similar", "--item", HUGE], 2, f"unknown item_id '{HUGE}' (6 items; its item ids are 64-bit integers)"),
    (["similar", "--item", "1", "-k", "-1"], 2, "error: k: must be an integer >= 1, got -1"),
    (["recommend", "--items", "1,2", "-k", "0"], 2, "error: k: must be an integer >= 1, got 0"),
    (["recommend", "--items", "1,2,3,4,5,6"], 2, "nothing left to recommend"),
    (["recommend", "--items", HUGE, "-k", "3"], 0, f"note: run 20200101T000000Z-aaaaaa: no known item to fold in "
                                                   f"(unknown item_id(s) {HUGE})"),
    (["recommend", "--user", HUGE], 2, "outside the 64-bit range"),
])
def test_the_cli_answers_bad_input_in_one_line(saved, capsys, argv, code, message):
    runs_dir, _ = saved
    assert main([*argv, "--runs-dir", str(runs_dir)]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
