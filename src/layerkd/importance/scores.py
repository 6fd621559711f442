"""Per-layer importance scores of every one-shot method, from the merged teacher cache.

Each method's raw score follows DESIGN.md; normalised scores are non-negative and sum to 1;
the concentration ratio is the mean normalised score of the top quarter of layers over the
bottom quarter (wherever they sit); the upper/lower ratio compares the top quarter of the stack
to the bottom quarter by depth.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from layerkd.io import write_json
from layerkd.records import ScoreRecord
from layerkd.selection.strategies import SelectionError, as_vector

CACHE_METHODS = ("fisher", "gradient", "taylor", "block_influence", "angular", "attention")


def load_stats(path: Path) -> dict[str, np.ndarray]:
    """The calibration statistics written by ``merge_cache`` (``teacher/cache_stats.npz``)."""
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def raw_scores(stats: dict[str, np.ndarray], method: str) -> np.ndarray:
    """The raw per-layer score of ``method`` from the calibration statistics."""
    if method not in CACHE_METHODS:
        raise ValueError(f"method {method!r} is not computed from the teacher cache")
    mean = stats[f"sum_{method}"] / float(stats["n"])
    return np.abs(mean) if method == "taylor" else mean


def hybrid_scores(normalised: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of normalised component scores (weights renormalised over those given)."""
    used = {m: w for m, w in weights.items() if w > 0}
    missing = [m for m in used if m not in normalised]
    if missing:
        raise ValueError(f"hybrid needs the scores of {missing}")
    total = sum(used.values())
    return sum(w / total * normalised[m] for m, w in used.items())


def quarter_weights(n: int) -> np.ndarray:
    """Weights of the first quarter of ``n`` layers, for any ``n``: a quarter is ``n / 4``
    layers, so layer ``i`` counts ``clip(n/4 - i, 0, 1)`` (L = 30: seven whole layers and half
    of the eighth; L = 32: exactly eight). The weights sum to ``n / 4``."""
    return np.clip(n / 4 - np.arange(n), 0.0, 1.0)


def quarter_means(values: np.ndarray) -> tuple[float, float]:
    """(mean of the first quarter, mean of the last quarter) of ``values``, quarters as in
    :func:`quarter_weights`."""
    v = np.asarray(values, dtype=np.float64)
    w = quarter_weights(v.size)
    return float(w @ v / w.sum()), float(w @ v[::-1] / w.sum())


def upper_lower_ratio(normalised: np.ndarray | list[float]) -> float:
    """Mean normalised score of the upper quarter of layers *by depth* over the lower quarter
    (quarters of :func:`quarter_weights`; the original design's claim: 3.8-8.5 on a 32-layer
    teacher); ``inf`` when the lower quarter scores 0."""
    low, high = quarter_means(np.asarray(normalised, dtype=np.float64))
    return math.inf if low == 0 else high / low


def normalise_scores(raw: np.ndarray, *, method: str = "?") -> np.ndarray:
    """Scale non-negative raw scores to sum to 1 (errors name the method and the layer)."""
    arr = as_vector(raw, f"raw scores of method {method!r}", None, "layer")
    if arr.size == 0:
        raise SelectionError(f"raw scores of method {method!r} are empty")
    total = float(arr.sum())
    if total <= 0:
        raise SelectionError(f"raw scores of method {method!r} are all zero; cannot normalise")
    return arr / total


def concentration_ratio(normalised: np.ndarray) -> float:
    """Mean of the top quarter of scores over the mean of the bottom quarter.

    Quarters as in :func:`quarter_weights`. Returns ``inf`` when the bottom quarter's mean is
    0 (and the top's is positive); 1.0 means perfectly flat scores.
    """
    arr = as_vector(normalised, "normalised scores", None, "layer")
    if arr.size == 0:
        raise SelectionError("normalised scores are empty")
    bottom, top = quarter_means(np.sort(arr))
    if top == 0:
        raise SelectionError("normalised scores are all zero; concentration is undefined")
    return math.inf if bottom == 0 else top / bottom


def ratio_interval(
    stats: dict[str, np.ndarray],
    method: str,
    hybrid_weights: dict[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[float] | None:
    """Percentile-bootstrap 95% interval of :func:`upper_lower_ratio` over the calibration
    samples: each resample draws ``n`` samples with replacement and recomputes the method's
    raw scores (the mean of their per-sample rows; ``hybrid``: of each component), normalised.
    ``None`` when a statistic has no per-sample rows (taylor; the ablation and greedy methods
    are not computed here)."""
    parts = (
        [m for m, w in (hybrid_weights or {}).items() if w > 0] if method == "hybrid" else [method]
    )
    if not parts or any(f"rows_{m}" not in stats for m in parts):
        return None
    rows = {m: stats[f"rows_{m}"] for m in parts}
    n = next(iter(rows.values())).shape[0]
    rng = np.random.default_rng([seed, n])
    ratios = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        norm = {m: r[idx].mean(0) / r[idx].mean(0).sum() for m, r in rows.items()}
        v = hybrid_scores(norm, hybrid_weights or {}) if method == "hybrid" else norm[method]
        ratios.append(upper_lower_ratio(v))
    lo, hi = np.quantile(np.asarray(ratios), [0.025, 0.975])
    return [float(lo), float(hi)]


def score_record(method: str, raw: np.ndarray, n_samples: int) -> ScoreRecord:
    """The JSON record of one method's scores: ``concentration_ratio`` compares the quarter of
    layers with the highest scores to the quarter with the lowest (wherever they sit);
    ``upper_lower_ratio`` compares the top quarter of the stack to the bottom quarter."""
    norm = normalise_scores(raw, method=method)
    return {
        "method": method,
        "n_layers": len(raw),
        "n_samples": n_samples,
        "raw": raw.tolist(),
        "normalised": norm.tolist(),
        "concentration_ratio": concentration_ratio(norm),
        "upper_lower_ratio": upper_lower_ratio(norm),
    }


def score_stage(
    *, stats: Path, scores: Path, method: str, hybrid_weights: dict[str, float]
) -> ScoreRecord:
    """Write ``scores/{method}.json`` (``scores``) from the calibration statistics ``stats``."""
    calib = load_stats(stats)
    n = int(calib["n"])
    if method == "hybrid":
        norm = {
            m: normalise_scores(raw_scores(calib, m), method=m)
            for m, w in hybrid_weights.items()
            if w > 0
        }
        raw = hybrid_scores(norm, hybrid_weights)
    else:
        raw = raw_scores(calib, method)
    rec = score_record(method, raw, n)
    ci = ratio_interval(calib, method, hybrid_weights)
    if ci is not None:  # H1's interval over the calibration samples
        rec["upper_lower_ci"] = ci
    write_json(scores, rec)
    return rec
