"""Tests for layerkd.stats on constructed data whose answer is known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from layerkd.evaluation.stats import (
    bootstrap_ci,
    kendall,
    paired_bootstrap,
    spearman,
    two_level_ci,
    wilcoxon,
)

# ---------------------------------------------------------------- bootstrap_ci


def test_bootstrap_constant_data_zero_width() -> None:
    assert bootstrap_ci(np.full(500, 0.3)) == (0.3, 0.3, 0.3)


def test_bootstrap_large_normal_contains_mean_with_expected_width() -> None:
    mu, sigma, n = 1.0, 2.0, 20_000
    values = np.random.default_rng(11).normal(mu, sigma, size=n)
    mean, lo, hi = bootstrap_ci(values, n_boot=2000, seed=1)
    assert mean == pytest.approx(values.mean())
    assert lo < mu < hi
    assert lo < mean < hi
    # Width ~ 2 * 1.96 * sigma / sqrt(n) = 0.05544; a 2000-resample percentile estimate of it
    # is good to a few percent.
    assert hi - lo == pytest.approx(2 * 1.96 * sigma / math.sqrt(n), rel=0.1)


def test_bootstrap_bernoulli_matches_normal_approximation() -> None:
    values = (np.random.default_rng(5).random(4000) < 0.3).astype(float)  # like HR@k
    mean, lo, hi = bootstrap_ci(values, n_boot=2000, seed=2)
    se = math.sqrt(mean * (1 - mean) / values.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(mean, abs=0.2 * se)


def test_bootstrap_is_seeded_and_alpha_orders_intervals() -> None:
    values = np.random.default_rng(0).random(300)
    assert bootstrap_ci(values, seed=4) == bootstrap_ci(values, seed=4)
    _, lo95, hi95 = bootstrap_ci(values, alpha=0.05)
    _, lo80, hi80 = bootstrap_ci(values, alpha=0.20)
    assert lo95 < lo80 < hi80 < hi95


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci(np.array([]))
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci(np.array([1.0, 2.0]), alpha=1.5)
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci(np.array([1.0, 2.0]), n_boot=0)


# ---------------------------------------------------------------- paired tests


def test_paired_bootstrap_identical_arrays() -> None:
    a = np.random.default_rng(1).random(200)
    out = paired_bootstrap(a, a.copy())
    assert out["mean_diff"] == 0.0
    assert out["ci_lo"] == out["ci_hi"] == 0.0
    assert out["p_value"] == 1.0
    assert out["n"] == 200


def test_paired_bootstrap_clear_shift() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(500)
    a = b + 0.1 + rng.normal(0, 0.05, size=500)
    out = paired_bootstrap(a, b)
    assert out["mean_diff"] == pytest.approx(0.1, abs=0.01)
    assert 0.0 < out["ci_lo"] < 0.1 < out["ci_hi"]
    assert out["p_value"] < 0.01
    # never exactly 0: the smallest attainable p is 2 / (n_boot + 1)
    assert out["p_value"] == pytest.approx(2 / 1001)
    flipped = paired_bootstrap(b, a)
    assert flipped["mean_diff"] == pytest.approx(-out["mean_diff"])
    assert flipped["p_value"] < 0.01


def test_paired_bootstrap_no_real_difference() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random(400), rng.random(400)
    out = paired_bootstrap(a, b)
    assert out["ci_lo"] < 0.0 < out["ci_hi"]
    assert out["p_value"] > 0.05


def test_paired_bootstrap_constant_nonzero_difference() -> None:
    out = paired_bootstrap(np.ones(10), np.zeros(10))
    assert out["mean_diff"] == out["ci_lo"] == out["ci_hi"] == 1.0
    assert out["p_value"] == pytest.approx(2 / 1001)


def test_paired_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="length"):
        paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="length"):
        wilcoxon(np.ones(3), np.ones(4))


def test_wilcoxon_identical_inputs_do_not_crash() -> None:
    a = np.array([0.0, 1.0, 0.5, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = wilcoxon(a, a.copy())
    assert out["p_value"] == 1.0 and out["statistic"] == 0.0 and out["n_nonzero"] == 0


def test_wilcoxon_clear_shift_and_matches_scipy() -> None:
    rng = np.random.default_rng(4)
    b = rng.random(300)
    a = b + 0.05 + rng.normal(0, 0.05, size=300)
    out = wilcoxon(a, b)
    assert out["p_value"] < 0.01
    assert out["n"] == out["n_nonzero"] == 300
    ref = scipy.stats.wilcoxon(a, b)
    assert out["p_value"] == pytest.approx(ref.pvalue)
    assert out["statistic"] == pytest.approx(ref.statistic)


def test_wilcoxon_binary_metrics_with_many_zeros() -> None:
    # HR-like 0/1 per-user values: most pairs tie, the rest all favour a.
    a = np.array([1.0] * 30 + [0.0] * 70)
    b = np.array([0.0] * 15 + [1.0] * 15 + [0.0] * 70)
    out = wilcoxon(a, b)
    assert out["n_nonzero"] == 15
    assert out["p_value"] < 0.01
    assert out["median_diff"] == 0.0


# ---------------------------------------------------------------- correlations


def test_rank_correlations_by_hand() -> None:
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    # Spearman: d = (0, 1, 1, 0), rho = 1 - 6 * 2 / (4 * (16 - 1)) = 1 - 12/60 = 0.8
    assert spearman(x, y) == pytest.approx(0.8)
    # Kendall: 6 pairs, one discordant (2, 3): tau = (5 - 1) / 6 = 2/3
    assert kendall(x, y) == pytest.approx(2 / 3)
    assert isinstance(spearman(x, y), float) and isinstance(kendall(x, y), float)
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_rank_correlations_constant_input_is_nan_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
        assert math.isnan(kendall([1, 2, 3], [5, 5, 5]))
        assert math.isnan(spearman([1.0], [2.0]))


def test_rank_correlations_reject_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        spearman([1.0, np.nan], [1.0, 2.0])


# ---------------------------------------------------------------- two_level_ci


def _two_level_reference(m: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """Slow reference: the same draws (seeds for every resample, then users), each resample's
    mean summed cell by cell in plain Python."""
    rng = np.random.default_rng(seed)
    n_seeds, n = m.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    users = rng.integers(0, n, size=(n_boot, n))
    means = []
    for b in range(n_boot):
        total = 0.0
        for s in seeds[b]:
            for u in users[b]:
                total += float(m[s, u])
        means.append(total / (n_seeds * n))
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(m.mean()), float(lo), float(hi)


def test_two_level_ci_matches_a_slow_reference_on_a_tiny_table() -> None:
    m = np.array([[0.0, 1.0, 0.5, 0.25, 1.0], [0.2, 0.9, 0.1, 0.0, 1.0], [1.0, 1.0, 0.3, 0.0, 0.6]])
    got = two_level_ci(m, n_boot=300, seed=3)
    ref = _two_level_reference(m, 300, 3)
    assert got == pytest.approx(ref, rel=1e-12, abs=1e-12)
    assert got[0] == pytest.approx(m.mean())


def test_two_level_ci_holds_the_seed_variance() -> None:
    rng = np.random.default_rng(0)
    users = rng.random(400)
    # three seeds that shift every user by -0.1, 0, +0.1: users alone do not see it
    m = users[None, :] + np.array([-0.1, 0.0, 0.1])[:, None]
    _, lo2, hi2 = two_level_ci(m, n_boot=2000, seed=1)
    _, lo1, hi1 = bootstrap_ci(m.mean(axis=0), n_boot=2000, seed=1)
    assert hi2 - lo2 > 2 * (hi1 - lo1)
    # one seed: the users-only interval
    assert two_level_ci(m[:1], n_boot=500, seed=2) == bootstrap_ci(m[0], n_boot=500, seed=2)


def test_two_level_ci_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="seeds x users"):
        two_level_ci(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        two_level_ci(np.array([[1.0, np.nan], [0.0, 1.0]]))
