"""Per-user rating errors and their intervals."""

from __future__ import annotations

import numpy as np
import pytest

from layerkd.evaluation.evaluate import rating_detail


def test_rating_detail_by_hand():
    pred = np.array([4.0, 2.6, 5.0, 3.0])
    true = np.array([5.0, 3.0, np.nan, 3.0])
    d = rating_detail(pred, true, ["a", "b", "c", "d"], bootstrap=200, seed=0)
    assert d["user_ids_rated"] == ["a", "b", "d"]  # c has no rating
    assert d["rating_per_user"]["sq_err"] == pytest.approx([1.0, 0.16, 0.0])
    assert d["rating_per_user"]["abs_err"] == pytest.approx([1.0, 0.4, 0.0])
    # rounded: 4 vs 5 wrong, 3 vs 3 right, 3 vs 3 right
    assert d["rating_per_user"]["correct"] == [0.0, 1.0, 1.0]
    lo, hi = d["rating_ci"]["rmse"]
    assert 0.0 <= lo <= np.sqrt(np.mean([1.0, 0.16, 0.0])) <= hi <= 1.0


def test_no_ratings_gives_no_detail():
    d = rating_detail(np.array([3.0]), np.array([np.nan]), ["a"], bootstrap=10, seed=0)
    assert d["rating_per_user"] is None and d["user_ids_rated"] == []
