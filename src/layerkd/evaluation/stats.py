"""Uncertainty and significance for per-user metrics, and rank correlations.

* :func:`bootstrap_ci` - percentile bootstrap interval of a mean over users.
* :func:`two_level_ci` - the same for a model trained with several seeds: resample seeds, then
  users, so the interval holds the training variance as well as the users'.
* :func:`paired_bootstrap` - bootstrap of the mean per-user difference between two models scored
  on the same users (resampling users, so the pairing is kept), with a two-sided p-value.
* :func:`wilcoxon` - Wilcoxon signed-rank test on the same pairs, safe when all pairs are equal.
* :func:`spearman`, :func:`kendall` - rank correlations (e.g. a layer-importance method against
  the ablation ground truth).

Inputs containing NaN raise ``ValueError``: a NaN per-user metric is a bug upstream, and silently
dropping users would make two models' numbers incomparable. Resampling is vectorised in chunks of
at most about two million draws, so memory stays bounded for large user sets; results depend only
on the inputs and ``seed``.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike, NDArray

__all__ = ["bootstrap_ci", "kendall", "paired_bootstrap", "spearman", "two_level_ci", "wilcoxon"]

_CHUNK_DRAWS = 2_000_000


def _as_1d(x: ArrayLike, name: str) -> NDArray[np.float64]:
    v = np.asarray(x, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(v).any():
        raise ValueError(f"{name} contains NaN")
    return v


def _as_pair(a: ArrayLike, b: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"paired arrays differ in length: {x.size} vs {y.size}")
    return x, y


def _check_boot(n_boot: int, alpha: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _bootstrap_means(v: NDArray[np.float64], n_boot: int, seed: int) -> NDArray[np.float64]:
    """Means of ``n_boot`` resamples (with replacement, same size) of ``v``."""
    rng = np.random.default_rng(seed)
    n = v.size
    rows = max(1, _CHUNK_DRAWS // n)
    out = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


def bootstrap_ci(
    values: ArrayLike, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` and its percentile-bootstrap ``1 - alpha`` interval over users.

    Returns:
        ``(mean, lo, hi)`` where ``lo``/``hi`` are the ``alpha/2`` and ``1 - alpha/2`` quantiles
        of the resampled means. Constant data gives the zero-width interval ``(c, c, c)``.
    """
    _check_boot(n_boot, alpha)
    v = _as_1d(values, "values")
    mean = float(v.mean())
    if np.all(v == v[0]):
        return float(v[0]), float(v[0]), float(v[0])
    means = _bootstrap_means(v, n_boot, seed)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return mean, float(lo), float(hi)


def two_level_ci(
    values: ArrayLike, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` (seeds × users: one row per training seed, users aligned) and its
    two-level percentile-bootstrap ``1 - alpha`` interval: each resample draws ``S`` seeds with
    replacement, then ``n`` users with replacement, and averages those cells.

    Returns ``(mean, lo, hi)``; one seed gives :func:`bootstrap_ci`'s interval over users.
    """
    _check_boot(n_boot, alpha)
    m = np.asarray(values, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"values must be a non-empty seeds x users matrix, got shape {m.shape}")
    if np.isnan(m).any():
        raise ValueError("values contains NaN")
    n_seeds, n = m.shape
    if n_seeds == 1:
        return bootstrap_ci(m[0], n_boot=n_boot, alpha=alpha, seed=seed)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_DRAWS // n)
    means = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        seeds = rng.integers(0, n_seeds, size=(stop - start, n_seeds))
        users = rng.integers(0, n, size=(stop - start, n))
        # mean over (drawn seed, drawn user) cells = mean over users of the drawn seeds' mean
        per_user = m[seeds].mean(axis=1)  # (B, n): each resample's seed-mean of every user
        means[start:stop] = np.take_along_axis(per_user, users, axis=1).mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(m.mean()), float(lo), float(hi)


def paired_bootstrap(
    a: ArrayLike, b: ArrayLike, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> dict[str, float | int]:
    """Paired bootstrap of ``mean(a - b)`` for two models' per-user metrics on the same users.

    Users are resampled (so each user's pair stays together). The two-sided p-value is
    ``min(1, 2 * min(P*(d <= 0), P*(d >= 0)))`` over the bootstrap means ``d``, each tail with
    the ``(1 + count) / (1 + n_boot)`` correction so it is never exactly 0; identical inputs
    give ``p = 1``.

    Returns:
        ``mean_diff``, ``ci_lo``, ``ci_hi`` (percentile ``1 - alpha`` interval), ``p_value``,
        ``n`` (users) and ``n_boot``.
    """
    _check_boot(n_boot, alpha)
    x, y = _as_pair(a, b)
    d = x - y
    out: dict[str, float | int] = {"mean_diff": float(d.mean()), "n": int(d.size), "n_boot": n_boot}
    if np.all(d == d[0]):
        c = float(d[0])
        tail = 1.0 if c == 0.0 else 1.0 / (n_boot + 1)
        out.update(ci_lo=c, ci_hi=c, p_value=min(1.0, 2.0 * tail), mean_diff=c)
        return out
    means = _bootstrap_means(d, n_boot, seed)
    lo, hi = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    p_le = (1 + np.count_nonzero(means <= 0.0)) / (n_boot + 1)
    p_ge = (1 + np.count_nonzero(means >= 0.0)) / (n_boot + 1)
    out.update(ci_lo=float(lo), ci_hi=float(hi), p_value=float(min(1.0, 2.0 * min(p_le, p_ge))))
    return out


def wilcoxon(a: ArrayLike, b: ArrayLike) -> dict[str, float | int]:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (zero differences discarded).

    Uses :func:`scipy.stats.wilcoxon` with ``zero_method="wilcox"`` and ``method="auto"`` (exact
    for small samples, permutation when ties/zeros make it inexact, normal approximation for
    large ones). When every difference is zero there is nothing to test: the result is
    ``statistic = 0.0``, ``p_value = 1.0`` instead of scipy's warning and NaN.

    Returns:
        ``statistic``, ``p_value``, ``n`` (pairs), ``n_nonzero`` (pairs with a difference),
        ``median_diff``.
    """
    x, y = _as_pair(a, b)
    d = x - y
    n_nonzero = int(np.count_nonzero(d))
    out: dict[str, float | int] = {
        "n": int(d.size),
        "n_nonzero": n_nonzero,
        "median_diff": float(np.median(d)),
    }
    if n_nonzero == 0:
        out.update(statistic=0.0, p_value=1.0)
        return out
    res = scipy.stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided", method="auto")
    out.update(statistic=float(res.statistic), p_value=float(res.pvalue))
    return out


def _correlation(a: ArrayLike, b: ArrayLike, fn: str) -> float:
    x, y = _as_pair(a, b)
    if x.size < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        if fn == "spearman":
            return float(scipy.stats.spearmanr(x, y).statistic)
        return float(scipy.stats.kendalltau(x, y).statistic)


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation as a float.

    Returns NaN when either input is constant or has fewer than two elements (the correlation is
    undefined there; it is not 0). Raises ``ValueError`` on NaN or unequal lengths.
    """
    return _correlation(a, b, "spearman")


def kendall(a: ArrayLike, b: ArrayLike) -> float:
    """Kendall's tau-b as a float; NaN for constant or length < 2 input, like :func:`spearman`."""
    return _correlation(a, b, "kendall")
