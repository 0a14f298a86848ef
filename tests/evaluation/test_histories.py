"""Histories: each user's items in time order, and the windows the cold-start protocols slice from them."""

import numpy as np

from recsys_lab.evaluation.histories import Histories


def test_histories_sort_by_time_keep_first_occurrence_and_follow_the_given_users():
    h = Histories.from_arrays(np.array([1, 1, 0, 1, 1]), np.array([9, 8, 5, 9, 7]),
                                np.array([30, 10, 5, 5, 20]), users=np.array([1, 2, 0]))
    assert h.users.tolist() == [1, 2, 0]
    assert h.lengths.tolist() == [3, 0, 1]
    assert h.items[:3].tolist() == [9, 8, 7]  # 9 first seen at t=5, then 8 (10), 7 (20); the repeat at 30 dropped
    assert h.items[3:].tolist() == [5]


def test_window_slices_each_selected_history():
    h = Histories.from_lists([[4, 5, 6], [7], [8, 9]])
    m = h.window(np.array([0, 2]), np.array([1, 0]), np.array([3, 1]), 10)
    assert m.shape == (2, 10) and m[0].indices.tolist() == [5, 6] and m[1].indices.tolist() == [8]
