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


def test_eval_max_users_is_one_fixed_subset_for_every_model(tmp_path) -> None:
    from layerkd.config import defaults
    from layerkd.evaluation.reference import evaluate_reference, test_rows
    from layerkd.io import read_json

    rows = []
    for u in range(12):
        for split in ("train", "valid", "test"):
            cand = [f"i{(u + j) % 9}" for j in range(4)]
            rows.append({"split": split, "user_id": f"u{u:02d}", "history": ["i0"],
                         "target": cand[0], "target_rating": 4.0, "candidates": cand})  # fmt: skip
    frame = pd.DataFrame(rows)
    cut = test_rows(frame, 5, seed=0)
    test_users = cut[cut["split"] == "test"]["user_id"].tolist()
    assert len(test_users) == 5 and test_users == sorted(test_users)  # original order kept
    assert (cut["split"] != "test").sum() == (frame["split"] != "test").sum()
    assert test_rows(frame, 5, seed=0).equals(cut) and test_rows(frame, None, 0) is frame
    samples, inter = tmp_path / "samples.parquet", tmp_path / "inter.parquet"
    frame.to_parquet(samples)
    pd.DataFrame(
        {"user_id": ["u00"], "item_id": ["i1"], "rating": [5.0], "timestamp": [1]}
    ).to_parquet(inter)
    ev = defaults("eval", max_users=5, bootstrap=50)
    items = tmp_path / "items.parquet"
    pd.DataFrame({"item_id": [f"i{n}" for n in range(9)]}).to_parquet(items)
    evaluate_reference(samples=samples, interactions=inter, item_table=items,
                       random=tmp_path / "r.json", popular=tmp_path / "p.json",
                       evaluation=ev)  # fmt: skip
    for name in ("r.json", "p.json"):
        rec = read_json(tmp_path / name)
        assert rec["user_ids"] == test_users and rec["n_users"] == 5
