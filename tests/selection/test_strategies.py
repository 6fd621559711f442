"""Tests for layerkd.selection: properties for every strategy, hand-worked examples, errors."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from layerkd.importance.scores import concentration_ratio, normalise_scores
from layerkd.selection.names import layerset_id, parse_layerset_id
from layerkd.selection.strategies import (
    BASELINES,
    SCORE_STRATEGIES,
    STRATEGIES,
    SelectionError,
    select_layers,
)

ALL = tuple(STRATEGIES)


@st.composite
def problems(draw: st.DrawFn, min_k: int = 1) -> tuple[int, int, np.ndarray]:
    """(k, L, scores); scores drawn from a tiny value set half the time to force ties."""
    n_layers = draw(st.integers(min_value=max(2, min_k + 1), max_value=40))
    k = draw(st.integers(min_value=min_k, max_value=n_layers - 1))
    values = st.one_of(
        st.sampled_from([0.0, 0.1, 0.25, 1.0]),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    )
    scores = np.array(draw(st.lists(values, min_size=n_layers, max_size=n_layers)))
    return k, n_layers, scores


def expected_quotas(k: int) -> list[int]:
    """Independent largest-remainder split of k into 20/30/50% (ties to the heavier band)."""
    weights = [Fraction(2, 10), Fraction(3, 10), Fraction(5, 10)]
    exact = [k * w for w in weights]
    floors = [math.floor(e) for e in exact]
    by_remainder = sorted(range(3), key=lambda b: (exact[b] - floors[b], weights[b]), reverse=True)
    for b in by_remainder[: k - sum(floors)]:
        floors[b] += 1
    return floors


def expected_bands(n_layers: int) -> list[list[int]]:
    """Thirds of the depth, the lower bands taking the extra layers (np.array_split rule)."""
    base, extra = divmod(n_layers, 3)
    sizes = [base + (1 if b < extra else 0) for b in range(3)]
    starts = [0, sizes[0], sizes[0] + sizes[1]]
    return [list(range(s, s + n)) for s, n in zip(starts, sizes, strict=True)]


def ranked(scores: np.ndarray, layers: list[int]) -> list[int]:
    return sorted(layers, key=lambda i: (-scores[i], i))


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(problem=problems(min_k=2), seed=st.integers(0, 2**31), repeat=st.integers(0, 5))
def test_every_strategy_returns_k_unique_sorted_layers(problem, seed, repeat) -> None:
    k, n_layers, scores = problem
    for strategy in ALL:
        kept = select_layers(strategy, k, n_layers, scores, seed=seed, repeat=repeat)
        assert len(kept) == k, strategy
        assert kept == sorted(set(kept)), strategy
        assert all(isinstance(i, int) and 0 <= i < n_layers for i in kept), strategy
        # deterministic: the same input gives the same output
        again = select_layers(strategy, k, n_layers, scores.copy(), seed=seed, repeat=repeat)
        assert again == kept, strategy


@settings(max_examples=60, deadline=None)
@given(problem=problems(min_k=1))
def test_k_equal_one_works_where_allowed(problem) -> None:
    _, n_layers, scores = problem
    for strategy in set(ALL) - {"strategic", "hybrid"}:
        assert len(select_layers(strategy, 1, n_layers, scores)) == 1


@settings(max_examples=80, deadline=None)
@given(problem=problems(min_k=1))
def test_top_k_keeps_the_highest_scores(problem) -> None:
    k, n_layers, scores = problem
    kept = select_layers("top_k", k, n_layers, scores)
    dropped = [i for i in range(n_layers) if i not in kept]
    assert min(scores[kept]) >= max(scores[dropped])
    assert kept == sorted(ranked(scores, list(range(n_layers)))[:k])


@settings(max_examples=80, deadline=None)
@given(problem=problems(min_k=2))
def test_strategic_keeps_first_and_last(problem) -> None:
    k, n_layers, scores = problem
    kept = select_layers("strategic", k, n_layers, scores)
    assert kept[0] == 0 and kept[-1] == n_layers - 1


@settings(max_examples=150, deadline=None)
@given(problem=problems(min_k=1))
def test_distributed_respects_band_counts(problem) -> None:
    k, n_layers, scores = problem
    kept = select_layers("distributed", k, n_layers, scores)
    quotas, bands = expected_quotas(k), expected_bands(n_layers)
    counts = [sum(i in band for i in kept) for band in bands]
    if all(q <= len(b) for q, b in zip(quotas, bands, strict=True)):
        assert counts == quotas
    else:  # a band too small for its quota is taken whole; the others take at least their quota
        for q, band, c in zip(quotas, bands, counts, strict=True):
            assert c == len(band) if q >= len(band) else c >= q
    for band, c in zip(bands, counts, strict=True):  # best-scoring within each band
        assert sorted(i for i in kept if i in band) == sorted(ranked(scores, band)[:c])


@pytest.mark.parametrize(
    ("k", "n_layers", "counts"),
    [
        (1, 9, [0, 0, 1]),
        (2, 9, [0, 1, 1]),
        (3, 9, [1, 1, 1]),
        (4, 12, [1, 1, 2]),
        (5, 12, [1, 1, 3]),
        (8, 32, [2, 2, 4]),
        (10, 32, [2, 3, 5]),
        (16, 32, [3, 5, 8]),
    ],
)
def test_distributed_band_counts_table(k: int, n_layers: int, counts: list[int]) -> None:
    # k=5: 1.0 / 1.5 / 2.5 -> floors 1/1/2, the spare unit ties (.5 vs .5) -> heavier top band.
    # k=16: 3.2 / 4.8 / 8.0 -> floors 3/4/8, the spare unit -> middle (remainder .8).
    assert expected_quotas(k) == counts
    kept = select_layers("distributed", k, n_layers, np.ones(n_layers))
    bands = expected_bands(n_layers)
    assert [sum(i in b for i in kept) for b in bands] == counts


@settings(max_examples=60, deadline=None)
@given(problem=problems(min_k=1))
def test_block_drops_one_contiguous_block(problem) -> None:
    k, n_layers, scores = problem
    kept = select_layers("block", k, n_layers, scores)
    dropped = [i for i in range(n_layers) if i not in kept]
    assert dropped == list(range(dropped[0], dropped[0] + n_layers - k))
    sums = [scores[s : s + n_layers - k].sum() for s in range(k + 1)]
    assert sums[dropped[0]] == min(sums) and dropped[0] == int(np.argmin(sums))


@settings(max_examples=60, deadline=None)
@given(n_layers=st.integers(3, 300), data=st.data())
def test_uniform_spans_first_to_last(n_layers: int, data: st.DataObject) -> None:
    k = data.draw(st.integers(2, n_layers - 1))
    kept = select_layers("uniform", k, n_layers)
    assert kept[0] == 0 and kept[-1] == n_layers - 1 and len(set(kept)) == k
    target = np.linspace(0, n_layers - 1, k)
    assert np.all(np.abs(np.array(kept) - target) <= 0.5 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(n_layers=st.integers(8, 40), seed=st.integers(0, 2**31), data=st.data())
def test_random_stable_per_seed_and_varies_across_repeats(n_layers, seed, data) -> None:
    k = data.draw(st.integers(2, n_layers - 2))  # C(L, k) >= 28: ten equal draws ~ impossible
    sets = [select_layers("random", k, n_layers, seed=seed, repeat=r) for r in range(10)]
    assert sets == [select_layers("random", k, n_layers, seed=seed, repeat=r) for r in range(10)]
    assert len({tuple(s) for s in sets}) > 1


def test_random_depends_on_seed() -> None:
    a = [select_layers("random", 8, 32, seed=0, repeat=r) for r in range(3)]
    b = [select_layers("random", 8, 32, seed=1, repeat=r) for r in range(3)]
    assert a != b


def test_all_equal_scores_give_the_documented_choice() -> None:
    flat = np.full(6, 0.5)
    # ties -> lower index everywhere
    assert select_layers("top_k", 3, 6, flat) == [0, 1, 2]
    # bands [0,1] [2,3] [4,5], quotas 1/1/1 -> the first layer of each band
    assert select_layers("distributed", 3, 6, flat) == [0, 2, 4]
    # keep 0 and 5; ranking is 1,2,3,4: 1 is next to 0 (skipped), 2 is free -> [0, 2, 5]
    assert select_layers("strategic", 3, 6, flat) == [0, 2, 5]
    # Borda (k - position): top_k 0:3 1:2 2:1; distributed 0:3 2:2 4:1; strategic 0:3 2:2 5:1
    # -> 0:9, 2:5, 1:2, 4:1, 5:1 -> [0, 1, 2]
    assert select_layers("hybrid", 3, 6, flat) == [0, 1, 2]
    # every block of 3 sums to 1.5 -> lowest start 0 -> keep the last three
    assert select_layers("block", 3, 6, flat) == [3, 4, 5]


# ----------------------------------------------------------------------------- hand-worked


def test_top_k_example() -> None:
    # ranking: 1 (.5), 4 (.5, tie -> after 1), then 0, 2, 3 at .2 in index order -> 0
    scores = np.array([0.2, 0.5, 0.2, 0.2, 0.5])
    assert select_layers("top_k", 3, 5, scores) == [0, 1, 4]


def test_distributed_example() -> None:
    # L=10 -> bands [0..3] [4,5,6] [7,8,9]; k=5 -> quotas 1/1/3 (see the table test).
    # bottom best = 0 (.9), middle best = 5 (.7), top takes all of 7, 8, 9.
    scores = np.array([0.9, 0.8, 0.1, 0.1, 0.2, 0.7, 0.3, 0.05, 0.06, 0.04])
    assert select_layers("distributed", 5, 10, scores) == [0, 5, 7, 8, 9]
    assert select_layers("top_k", 5, 10, scores) == [0, 1, 4, 5, 6]


def test_distributed_redistributes_surplus_by_score() -> None:
    # L=5 -> bands [0,1] [2,3] [4]; k=4 -> quotas 1/1/2 but the top band has one layer.
    # bottom -> 1 (.5), middle -> 2 (.3), top -> 4; the spare slot goes to the best remaining
    # layer of the other bands: 3 (.2) beats 0 (.1).
    scores = np.array([0.1, 0.5, 0.3, 0.2, 0.0])
    assert select_layers("distributed", 4, 5, scores) == [1, 2, 3, 4]


def test_strategic_examples() -> None:
    # keep 0 and 7; ranking 2 (.9), 3 (.8), 4 (.7), ...: 2 is free -> keep; 3 touches 2 -> skip;
    # 4 is free -> keep; k=4 reached.
    scores = np.array([0.0, 0.1, 0.9, 0.8, 0.7, 0.2, 0.6, 0.0])
    assert select_layers("strategic", 4, 8, scores) == [0, 2, 4, 7]
    # keep 0 and 4; 2 (.9) free -> keep; 1 and 3 both touch a kept layer, nothing free is left,
    # so fill by score: 1 (.5) before 3 (.1).
    assert select_layers("strategic", 4, 5, np.array([0.0, 0.5, 0.9, 0.1, 0.0])) == [0, 1, 2, 4]


def test_hybrid_borda_example() -> None:
    # L=7, k=3. Bands [0,1,2] [3,4] [5,6], quotas 1/1/1. Ranking: 3,5,4,6,0,2,1.
    scores = np.array([3, 1, 2, 7, 5, 6, 4], dtype=float)
    assert select_layers("top_k", 3, 7, scores) == [3, 4, 5]  # ranked 3,5,4 -> 3:3 5:2 4:1
    assert select_layers("distributed", 3, 7, scores) == [0, 3, 5]  # ranked 3,5,0 -> 3:3 5:2 0:1
    assert select_layers("strategic", 3, 7, scores) == [0, 3, 6]  # ranked 3,6,0 -> 3:3 6:2 0:1
    # totals 3:9, 5:4, 0:2, 6:2, 4:1 -> 3, 5, then 0 vs 6 tie at 2 -> higher score 6 (4 > 3)
    assert select_layers("hybrid", 3, 7, scores) == [3, 5, 6]


def test_block_with_distance_vector_and_matrix() -> None:
    # L=6, k=3 -> blocks of n=3 starting at 0..3; start 2 is the closest pair -> drop 2, 3, 4
    dist = np.array([0.5, 0.2, 0.1, 0.3])
    assert select_layers("block", 3, 6, block_distance=dist, method="angular") == [0, 1, 5]
    # the same through an (L+1)x(L+1) hidden-state matrix: block_distance[s] = D[s, s + 3]
    mat = np.ones((7, 7))
    for s, d in enumerate(dist):
        mat[s, s + 3] = d
    assert select_layers("block", 3, 6, angular_distance=mat) == [0, 1, 5]
    # the distance wins over scores when both are given
    assert select_layers("block", 3, 6, np.ones(6), block_distance=dist) == [0, 1, 5]


def test_block_falls_back_to_scores() -> None:
    # L=6, k=4, n=2: window sums .4 .15 .25 .3 .35 -> start 1 -> drop 1, 2
    scores = np.array([0.3, 0.1, 0.05, 0.2, 0.1, 0.25])
    assert select_layers("block", 4, 6, scores) == [0, 3, 4, 5]


def test_baseline_examples() -> None:
    assert select_layers("first_k", 3, 8) == [0, 1, 2]
    assert select_layers("last_k", 3, 8) == [5, 6, 7]
    # linspace(0, 31, 8) = 0, 4.43, 8.86, 13.29, 17.71, 22.14, 26.57, 31 -> rounded
    assert select_layers("uniform", 8, 32) == [0, 4, 9, 13, 18, 22, 27, 31]
    # linspace(0, 5, 5) = 0, 1.25, 2.5, 3.75, 5 -> half up: 2.5 -> 3
    assert select_layers("uniform", 5, 6) == [0, 1, 3, 4, 5]
    assert select_layers("uniform", 1, 6) == [0]
    # baselines ignore scores, even broken ones
    assert select_layers("first_k", 2, 4, np.array([np.nan, -1.0])) == [0, 1]


def test_registry() -> None:
    assert set(STRATEGIES) == set(BASELINES) | set(SCORE_STRATEGIES)
    assert BASELINES == ("first_k", "last_k", "uniform", "random")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "needles"),
    [
        (
            {"strategy": "top_k", "k": 8, "n_layers": 8},
            ["k=8 must be smaller than the teacher's 8 layers", "'fisher'", "'top_k'"],
        ),
        ({"strategy": "top_k", "k": 0, "n_layers": 8}, ["k=0", "at least 1"]),
        ({"strategy": "strategic", "k": 1, "n_layers": 8}, ["k=1", "'strategic'", "k >= 2"]),
        ({"strategy": "hybrid", "k": 1, "n_layers": 8}, ["'hybrid'", "k >= 2"]),
        ({"strategy": "nope", "k": 2, "n_layers": 8}, ["'nope'", "top_k", "random", "block"]),
        ({"strategy": "top_k", "k": 2, "n_layers": 9}, ["'fisher'", "(8,)", "9 layers"]),
        ({"strategy": "top_k", "k": 2.5, "n_layers": 8}, ["integers"]),
    ],
)
def test_selection_errors(kwargs: dict, needles: list[str]) -> None:
    with pytest.raises(SelectionError) as err:
        select_layers(scores=np.ones(8), method="fisher", **kwargs)
    for needle in needles:
        assert needle in str(err.value)


@pytest.mark.parametrize("strategy", SCORE_STRATEGIES)
def test_bad_scores_name_method_and_layer(strategy: str) -> None:
    nan = np.array([0.1, 0.2, 0.3, np.nan, 0.1, 0.1])
    with pytest.raises(SelectionError, match=r"scores of method 'fisher' at layer 3 are NaN"):
        select_layers(strategy, 3, 6, nan, method="fisher")
    neg = np.array([0.1, 0.2, -0.3, 0.1, 0.1, 0.1])
    with pytest.raises(SelectionError, match=r"'gradient' at layer 2 are negative"):
        select_layers(strategy, 3, 6, neg, method="gradient")
    with pytest.raises(SelectionError, match=r"needs scores"):
        select_layers(strategy, 3, 6, None, method="none")


def test_bad_block_distance() -> None:
    with pytest.raises(SelectionError, match=r"4 are needed"):
        select_layers("block", 3, 6, block_distance=np.ones(3))
    with pytest.raises(SelectionError, match=r"block start 1 are NaN"):
        select_layers("block", 3, 6, block_distance=np.array([0.1, np.nan, 0.2, 0.3]))
    with pytest.raises(SelectionError, match=r"shape \(7, 7\)"):
        select_layers("block", 3, 6, angular_distance=np.ones((6, 6)))
    with pytest.raises(SelectionError, match=r"not both"):
        select_layers("block", 3, 6, block_distance=np.ones(4), angular_distance=np.ones((7, 7)))


# ----------------------------------------------------------------------------- ids and scores


@settings(max_examples=100, deadline=None)
@given(layers=st.sets(st.integers(0, 99), min_size=1, max_size=40))
def test_layerset_id_round_trip(layers: set[int]) -> None:
    s = layerset_id(sorted(layers))
    assert parse_layerset_id(s) == sorted(layers)
    assert layerset_id(parse_layerset_id(s)) == s
    assert layerset_id(list(layers), n_layers=100) == s  # unsorted input, same id


def test_layerset_id_format() -> None:
    assert layerset_id([0, 8, 9, 19, 28, 29, 30, 31]) == "L00-08-09-19-28-29-30-31"
    assert layerset_id([0, 5, 99], n_layers=128) == "L000-005-099"
    assert parse_layerset_id("L000-005-120") == [0, 5, 120]
    assert layerset_id([3, 120]) == "L003-120"
    for bad in ["", "L", "L1-2", "L01-2", "L02-01", "L01-01", "X01-02", "L01_02"]:
        with pytest.raises(SelectionError):
            parse_layerset_id(bad)
    with pytest.raises(SelectionError, match="unique"):
        layerset_id([1, 1])
    with pytest.raises(SelectionError, match="out of range"):
        layerset_id([1, 8], n_layers=8)


@settings(max_examples=60, deadline=None)
@given(raw=st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=40))
def test_normalise_scores_property(raw: list[float]) -> None:
    arr = np.array(raw)
    if arr.sum() == 0:
        with pytest.raises(SelectionError, match="all zero"):
            normalise_scores(arr)
        return
    out = normalise_scores(arr)
    assert np.all(out >= 0) and math.isclose(out.sum(), 1.0, rel_tol=1e-9)


def test_normalise_scores_errors() -> None:
    with pytest.raises(SelectionError, match=r"'taylor' at layer 1 are NaN"):
        normalise_scores(np.array([1.0, np.nan]), method="taylor")
    with pytest.raises(SelectionError, match=r"at layer 0 are negative"):
        normalise_scores(np.array([-1.0, 2.0]))
    with pytest.raises(SelectionError, match="all zero"):
        normalise_scores(np.zeros(4))
    np.testing.assert_allclose(normalise_scores(np.array([1.0, 3.0])), [0.25, 0.75])


def test_concentration_ratio() -> None:
    # L=4 -> quarter of 1 layer: .4 / .1
    assert concentration_ratio(np.array([0.1, 0.4, 0.3, 0.2])) == pytest.approx(4.0)
    # L=8 -> quarter of 2 layers: mean(.3, .2) / mean(.05, .05) = 5
    scores = np.array([0.05, 0.3, 0.1, 0.05, 0.2, 0.1, 0.1, 0.1])
    assert concentration_ratio(scores) == pytest.approx(5.0)
    assert concentration_ratio(np.full(5, 0.2)) == pytest.approx(1.0)
    assert concentration_ratio(np.array([0.5, 0.5, 0.0, 0.0])) == math.inf
    with pytest.raises(SelectionError, match="all zero"):
        concentration_ratio(np.zeros(4))
    with pytest.raises(SelectionError, match="layer 2 are NaN"):
        concentration_ratio(np.array([0.5, 0.5, np.nan]))


def test_random_search_sets_are_distinct_seeded_and_capped():
    from math import comb

    from layerkd.selection.strategies import random_search_sets

    a = random_search_sets(30, 8, 25, seed=0)
    assert len(a) == 25 and len({tuple(x) for x in a}) == 25
    assert all(x == sorted(x) and len(set(x)) == 8 and 0 <= x[0] and x[-1] < 30 for x in a)
    assert random_search_sets(30, 8, 25, seed=0) == a
    assert random_search_sets(30, 8, 25, seed=1) != a
    assert random_search_sets(30, 8, 10, seed=0) == a[:10]  # a prefix of the same draws
    every = random_search_sets(5, 3, 100, seed=0)  # only C(5, 3) = 10 exist
    assert len(every) == comb(5, 3) and len({tuple(x) for x in every}) == 10
    with pytest.raises(SelectionError):
        random_search_sets(4, 5, 1, seed=0)
