"""Tests for layerkd.metrics: hand-computed ranks (pessimistic ties) and metric values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from layerkd.evaluation.metrics import (
    RANKING_KEYS,
    hit_rate_at_k,
    ndcg_at_k,
    random_ranker_expectation,
    ranking_metrics,
    rating_metrics,
    reciprocal_rank,
    summarise,
    target_ranks,
)
from layerkd.evaluation.rankers import random_scores

INF = float("inf")


def reference_rank(row: np.ndarray, t: int) -> int:
    """Slow, obvious pessimistic rank: 1 + negatives strictly above + negatives tied."""
    rank = 1
    for j, s in enumerate(row):
        if j != t and s >= row[t]:
            rank += 1
    return rank


# ---------------------------------------------------------------- target_ranks


def test_target_ranks_hand_cases_with_ties() -> None:
    scores = np.array(
        [
            [0.5, 0.9, 0.1, 0.5],  # above: 0.9; tied: 0.5 -> 1 + 1 + 1 = 3
            [1.0, 0.2, 0.3, 0.4],  # nothing above -> 1
            [0.0, 0.0, 0.0, 0.0],  # constant: 3 ties -> 1 + 0 + 3 = 4 (worst)
            [-INF, -INF, 2.0, 3.0],  # above: 2, 3; tied: -inf -> 1 + 2 + 1 = 4
            [INF, 1e300, -INF, 0.0],  # strictly best -> 1
        ]
    )
    np.testing.assert_array_equal(target_ranks(scores), [3, 1, 4, 4, 1])
    assert target_ranks(scores).dtype == np.int64


def test_target_ranks_full_ranking_target_index() -> None:
    scores = np.array([[0.1, 0.7, 0.3], [0.2, 0.2, 0.9]])
    # row 0: target col 2 (0.3), above: 0.7 -> 2
    # row 1: target col 0 (0.2), above: 0.9, tied: col 1 -> 3
    np.testing.assert_array_equal(target_ranks(scores, np.array([2, 0])), [2, 3])


@pytest.mark.parametrize("n", [1, 2, 7, 101])
def test_constant_scorer_gets_worst_rank(n: int) -> None:
    scores = np.full((3, n), 0.25)
    np.testing.assert_array_equal(target_ranks(scores), [n, n, n])
    if n > 1:
        got = summarise(ranking_metrics(scores))
        expected = random_ranker_expectation(n, 10)
        assert got["mrr"] == pytest.approx(1.0 / n)
        assert got["mrr"] < expected["mrr"]
        assert got["ndcg@10"] <= expected["ndcg@10"]


def test_target_ranks_single_candidate() -> None:
    np.testing.assert_array_equal(target_ranks(np.array([[3.0], [-INF]])), [1, 1])


def test_target_ranks_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[0.1, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        target_ranks(np.array([[np.nan, 0.1]]))
    with pytest.raises(ValueError, match="2-D"):
        target_ranks(np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="2-D"):
        target_ranks(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="out of range"):
        target_ranks(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="out of range"):
        target_ranks(np.zeros((2, 3)), np.array([-1, 0]))
    with pytest.raises(ValueError, match="shape"):
        target_ranks(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ValueError, match="integers"):
        target_ranks(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_target_ranks_match_slow_reference_on_random_batch() -> None:
    rng = np.random.default_rng(123)
    # Few distinct values, so ties are common; some -inf masks as in full ranking.
    scores = rng.integers(0, 6, size=(200, 25)).astype(np.float64)
    scores[rng.random(scores.shape) < 0.05] = -INF
    expected = [reference_rank(row, 0) for row in scores]
    np.testing.assert_array_equal(target_ranks(scores), expected)
    tidx = rng.integers(0, 25, size=200)
    expected_full = [reference_rank(row, t) for row, t in zip(scores, tidx, strict=True)]
    np.testing.assert_array_equal(target_ranks(scores, tidx), expected_full)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 8)),
        elements=st.sampled_from([-INF, -1.0, 0.0, 0.5, 2.0, INF]),
    )
)
def test_target_ranks_property(scores: np.ndarray) -> None:
    ranks = target_ranks(scores)
    assert list(ranks) == [reference_rank(row, 0) for row in scores]
    assert ranks.min() >= 1 and ranks.max() <= scores.shape[1]


# ---------------------------------------------------------------- per-user metrics


RANKS = np.array([1, 2, 3, 5, 6, 10, 11])


def test_ndcg_by_hand() -> None:
    # 1/log2(r+1): r=1 -> 1/1 = 1; r=2 -> 1/log2(3) = 0.630930; r=3 -> 1/log2(4) = 0.5;
    # r=5 -> 1/log2(6) = 0.386853; r=6 -> 1/log2(7) = 0.356207; r=10 -> 1/log2(11) = 0.289065
    np.testing.assert_allclose(
        ndcg_at_k(RANKS, 5), [1.0, 0.630930, 0.5, 0.386853, 0.0, 0.0, 0.0], atol=1e-6
    )
    np.testing.assert_allclose(
        ndcg_at_k(RANKS, 10),
        [1.0, 0.630930, 0.5, 0.386853, 0.356207, 0.289065, 0.0],
        atol=1e-6,
    )


def test_hit_rate_and_mrr_by_hand() -> None:
    np.testing.assert_array_equal(hit_rate_at_k(RANKS, 1), [1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(hit_rate_at_k(RANKS, 5), [1, 1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(hit_rate_at_k(RANKS, 10), [1, 1, 1, 1, 1, 1, 0])
    # MRR has no cut-off: 1/11 still counts.
    np.testing.assert_allclose(
        reciprocal_rank(RANKS), [1, 1 / 2, 1 / 3, 1 / 5, 1 / 6, 1 / 10, 1 / 11]
    )


def test_metric_input_validation() -> None:
    with pytest.raises(ValueError, match="1-based"):
        ndcg_at_k(np.array([0, 1]), 5)
    with pytest.raises(ValueError, match="k must"):
        hit_rate_at_k(np.array([1]), 0)
    with pytest.raises(ValueError, match="whole"):
        reciprocal_rank(np.array([1.5]))
    np.testing.assert_array_equal(reciprocal_rank(np.array([2.0])), [0.5])


def test_ranking_metrics_and_summarise_by_hand() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.2],  # rank 1
            [0.3, 0.3, 0.1],  # tie -> rank 2
            [0.0, 0.5, 0.6],  # rank 3
        ]
    )
    per_user = ranking_metrics(scores)
    assert tuple(per_user) == RANKING_KEYS
    assert all(v.shape == (3,) for v in per_user.values())
    means = summarise(per_user)
    assert all(isinstance(v, float) for v in means.values())
    # NDCG@5 = (1 + 1/log2(3) + 1/log2(4)) / 3 = (1 + 0.630930 + 0.5) / 3 = 0.710310
    assert means["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 3)
    assert means["ndcg@10"] == means["ndcg@5"]
    # MRR = (1 + 1/2 + 1/3) / 3 = 11/18
    assert means["mrr"] == pytest.approx(11 / 18)
    assert means["hr@1"] == pytest.approx(1 / 3)
    assert means["hr@5"] == means["hr@10"] == 1.0


def test_summarise_rejects_empty() -> None:
    with pytest.raises(ValueError, match="no users"):
        summarise({"mrr": np.array([])})


# ---------------------------------------------------------------- random ranker


def test_random_ranker_small_case_by_hand() -> None:
    # n = 2, k = 1: rank 1 or 2 with prob 1/2 each.
    # NDCG@1 = HR@1 = 1/2; MRR = (1 + 1/2) / 2 = 0.75 = H_2 / 2.
    assert random_ranker_expectation(2, 1) == pytest.approx(
        {"ndcg@1": 0.5, "hr@1": 0.5, "mrr": 0.75}
    )
    # n = 4, k = 2: NDCG@2 = (1 + 1/log2(3)) / 4 = 0.407732; HR@2 = 2/4;
    # MRR = (1 + 1/2 + 1/3 + 1/4) / 4 = 25/48
    assert random_ranker_expectation(4, 2) == pytest.approx(
        {"ndcg@2": (1 + 1 / math.log2(3)) / 4, "hr@2": 0.5, "mrr": 25 / 48}
    )


@pytest.mark.parametrize("n", [1, 2, 3, 9, 10, 11, 101])
@pytest.mark.parametrize("k", [1, 5, 10, 50])
def test_random_ranker_matches_enumeration(n: int, k: int) -> None:
    positions = np.arange(1, n + 1)  # each rank equally likely
    got = random_ranker_expectation(n, k)
    assert got[f"ndcg@{k}"] == pytest.approx(ndcg_at_k(positions, k).mean(), rel=1e-12)
    assert got[f"hr@{k}"] == pytest.approx(hit_rate_at_k(positions, k).mean(), rel=1e-12)
    assert got["mrr"] == pytest.approx(reciprocal_rank(positions).mean(), rel=1e-12)


@pytest.mark.parametrize("n_candidates", [20, 101])
def test_random_ranker_matches_monte_carlo(n_candidates: int) -> None:
    n_users = 20_000
    means = summarise(ranking_metrics(random_scores(n_users, n_candidates, seed=7)))
    for k in (5, 10):
        expected = random_ranker_expectation(n_candidates, k)
        for key in (f"ndcg@{k}", f"hr@{k}", "mrr"):
            # Loose: 5 standard errors of a [0, 1] mean (sd <= 0.5).
            assert means[key] == pytest.approx(expected[key], abs=5 * 0.5 / math.sqrt(n_users))


def test_random_ranker_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        random_ranker_expectation(0, 5)
    with pytest.raises(ValueError):
        random_ranker_expectation(10, 0)


# ---------------------------------------------------------------- rating metrics


PRED = np.array([4.0, 2.5, 5.0, 3.0])
TRUE = np.array([5.0, 2.0, np.nan, 3.4])


def test_rating_metrics_by_hand_with_logits() -> None:
    logits = np.array(
        [
            [0, 0, 0, 0, 9.0],  # class 5, true 5 -> right
            [0, 9.0, 0, 0, 0],  # class 2, true 2 -> right
            [9.0, 0, 0, 0, 0],  # true NaN -> excluded
            [0, 0, 0, 9.0, 0],  # class 4, true 3.4 -> 3 -> wrong
        ]
    )
    out = rating_metrics(PRED, logits, TRUE)
    # rated rows 0, 1, 3: errors -1, 0.5, -0.4
    # MSE = (1 + 0.25 + 0.16) / 3 = 0.47 -> RMSE = sqrt(0.47); MAE = (1 + 0.5 + 0.4) / 3
    assert out["rmse"] == pytest.approx(math.sqrt(0.47))
    assert out["mae"] == pytest.approx(1.9 / 3)
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["n_rated"] == 3 and out["n_missing"] == 1


def test_rating_metrics_class_forms() -> None:
    # 1-D classes are ratings 1..5: same predictions as the logits above.
    assert rating_metrics(PRED, np.array([5, 2, 1, 4]), TRUE)["accuracy"] == pytest.approx(2 / 3)
    # None: round the regression half up: 4 vs 5 wrong, 2.5 -> 3 vs 2 wrong, 3 vs 3 right.
    assert rating_metrics(PRED, None, TRUE)["accuracy"] == pytest.approx(1 / 3)


def test_rating_metrics_no_ratings_and_errors() -> None:
    out = rating_metrics(np.array([3.0, 4.0]), None, np.array([np.nan, np.nan]))
    assert out["n_rated"] == 0 and out["n_missing"] == 2
    assert math.isnan(out["rmse"]) and math.isnan(out["accuracy"])
    with pytest.raises(ValueError, match="0-based"):
        rating_metrics(PRED, np.array([4, 1, 0, 3]), TRUE)
    with pytest.raises(ValueError, match="NaN"):
        rating_metrics(np.array([np.nan, 3.0]), None, np.array([4.0, 3.0]))
    with pytest.raises(ValueError):
        rating_metrics(PRED, np.zeros((4, 3)), TRUE)
    with pytest.raises(ValueError):
        rating_metrics(PRED[:3], None, TRUE)
