"""Tests for layerkd.baselines: random and most-popular rankers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layerkd.evaluation.metrics import target_ranks
from layerkd.evaluation.rankers import popularity_scores, random_scores

# a x3, b x1, c x2, d x3; e never interacted with
TRAIN = pd.DataFrame(
    {
        "user_id": ["u1", "u1", "u2", "u2", "u3", "u3", "u3", "u4", "u4"],
        "item_id": ["a", "a", "a", "b", "c", "c", "d", "d", "d"],
    }
)


def test_random_scores_shape_seed_and_no_ties() -> None:
    s = random_scores(50, 21, seed=3)
    assert s.shape == (50, 21) and s.dtype == np.float64
    assert s.min() >= 0.0 and s.max() < 1.0
    np.testing.assert_array_equal(s, random_scores(50, 21, seed=3))
    assert not np.array_equal(s, random_scores(50, 21, seed=4))
    assert all(len(np.unique(row)) == row.size for row in s)


def test_random_scores_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        random_scores(3, 0, seed=0)


def test_popularity_scores_hand_table() -> None:
    candidates = [["c", "a", "b", "e"], ["b", "a", "c", "d"], ["a", "d", "b", "c"]]
    scores = popularity_scores(candidates, TRAIN)
    np.testing.assert_array_equal(scores, [[2, 3, 1, 0], [1, 3, 2, 3], [3, 3, 1, 2]])
    # row 0: target c=2, above: a=3 -> rank 2
    # row 1: target b=1, above: a, c, d -> rank 4
    # row 2: target a=3, tied with d=3 -> pessimistic rank 2
    np.testing.assert_array_equal(target_ranks(scores), [2, 4, 2])


def test_popularity_unseen_target_ties_with_unseen_negatives() -> None:
    scores = popularity_scores([["e", "x", "y"], ["x", "b", "e"]], TRAIN)
    np.testing.assert_array_equal(scores, [[0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(target_ranks(scores), [3, 3])


def test_popularity_accepts_parquet_lists_and_arrays() -> None:
    rows = pd.Series([np.array(["a", "b"]), np.array(["d", "e"])])  # as read from parquet
    expected = [[3, 1], [3, 0]]
    np.testing.assert_array_equal(popularity_scores(rows, TRAIN), expected)
    np.testing.assert_array_equal(popularity_scores(rows.to_numpy(), TRAIN), expected)
    np.testing.assert_array_equal(
        popularity_scores(np.array([["a", "b"], ["d", "e"]]), TRAIN), expected
    )
    # a single 1-D list (full catalogue) gives a 1-D vector
    np.testing.assert_array_equal(
        popularity_scores(["a", "b", "c", "d", "e"], TRAIN), [3, 1, 2, 3, 0]
    )


def test_popularity_integer_ids() -> None:
    train = pd.DataFrame({"item_id": [10, 10, 20]})
    np.testing.assert_array_equal(popularity_scores([[20, 10, 30]], train), [[1, 2, 0]])


def test_popularity_errors_and_warning() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        popularity_scores([["a", "b"], ["c"]], TRAIN)
    with pytest.raises(ValueError, match="item_id"):
        popularity_scores([["a"]], TRAIN.rename(columns={"item_id": "item"}))
    with pytest.raises(ValueError, match="mix"):
        popularity_scores(["a", ["b"]], TRAIN)
    with pytest.warns(UserWarning, match="type mismatch"):
        popularity_scores([[1, 2]], TRAIN)
