"""Ranking and rating metrics, per user, for candidate and full-catalogue ranking.

Conventions
-----------
* ``scores`` is a float array of shape ``(n_users, n_candidates)``. For candidate ranking,
  **column 0 is the target** (the true next item) and every other column is a negative. For full
  ranking pass ``target_index``: one column index per row naming the target.
* Ranks are 1-based and ties are broken **pessimistically**::

      rank = 1 + #(negatives with score > target) + #(negatives with score == target)

  so a model that gives every candidate the same score gets the *worst* rank (``n_candidates``),
  never a flattering one. A constant scorer therefore earns exactly the metrics of the last
  position, which is below the random-ranker expectation (see :func:`random_ranker_expectation`).
* ``-inf`` is a legal score (for example to mask items already in the history); ``NaN`` is not
  and raises ``ValueError``: a NaN score means a broken model, not a low score.
* Every metric is a per-user array so significance tests can pair users across models;
  :func:`summarise` turns them into means.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "RANKING_KEYS",
    "hit_rate_at_k",
    "ndcg_at_k",
    "random_ranker_expectation",
    "rank_metrics",
    "ranking_metrics",
    "rating_metrics",
    "reciprocal_rank",
    "summarise",
    "target_ranks",
]

#: Keys returned by :func:`ranking_metrics`, in report order.
RANKING_KEYS: tuple[str, ...] = ("ndcg@5", "ndcg@10", "mrr", "hr@1", "hr@5", "hr@10")

N_RATING_CLASSES = 5


def target_ranks(scores: ArrayLike, target_index: ArrayLike | None = None) -> NDArray[np.int64]:
    """1-based rank of each row's target among that row's candidates (pessimistic ties).

    Args:
        scores: ``(n_users, n_candidates)`` scores, higher is better.
        target_index: ``None`` when column 0 holds the target (candidate ranking), else one
            integer column index per row (full ranking).

    Returns:
        ``int64`` array of shape ``(n_users,)`` with values in ``1..n_candidates``.

    Raises:
        ValueError: if ``scores`` is not 2-D with at least one column, contains NaN, or
            ``target_index`` has the wrong shape or an out-of-range index.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 1:
        raise ValueError(f"scores must be 2-D (n_users, n_candidates >= 1), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_users, n_cand = s.shape
    if target_index is None:
        idx = np.zeros(n_users, dtype=np.int64)
    else:
        raw = np.asarray(target_index)
        if raw.shape != (n_users,):
            raise ValueError(f"target_index must have shape ({n_users},), got {raw.shape}")
        if raw.size and not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"target_index must be integers, got dtype {raw.dtype}")
        idx = raw.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_cand):
            raise ValueError(f"target_index out of range [0, {n_cand})")
    target = s[np.arange(n_users), idx][:, None]
    # ">=" counts the target itself once (it equals itself), which supplies the leading "1 +";
    # every negative tied with the target is counted as ranked above it (pessimistic).
    return np.count_nonzero(s >= target, axis=1).astype(np.int64)


def _check_ranks(ranks: ArrayLike) -> NDArray[np.int64]:
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise ValueError(f"ranks must be 1-D, got shape {r.shape}")
    if r.size and not np.issubdtype(r.dtype, np.integer):
        if not np.all(np.isfinite(r)) or not np.all(r == np.round(r)):
            raise ValueError("ranks must be whole numbers")
    r = r.astype(np.int64)
    if r.size and r.min() < 1:
        raise ValueError("ranks are 1-based; got a rank < 1")
    return r


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return int(k)


def ndcg_at_k(ranks: ArrayLike, k: int) -> NDArray[np.float64]:
    """Per-user NDCG@k with one relevant item: ``1/log2(rank+1)`` if ``rank <= k`` else 0.

    The ideal DCG is 1 (the single relevant item at rank 1), so DCG is already normalised.
    """
    r, k = _check_ranks(ranks), _check_k(k)
    return np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)


def hit_rate_at_k(ranks: ArrayLike, k: int) -> NDArray[np.float64]:
    """Per-user hit rate (recall) @k: 1.0 if ``rank <= k`` else 0.0."""
    r, k = _check_ranks(ranks), _check_k(k)
    return (r <= k).astype(np.float64)


def reciprocal_rank(ranks: ArrayLike) -> NDArray[np.float64]:
    """Per-user reciprocal rank ``1/rank`` over the whole candidate list (no cut-off)."""
    return 1.0 / _check_ranks(ranks).astype(np.float64)


def ranking_metrics(
    scores: ArrayLike, target_index: ArrayLike | None = None
) -> dict[str, NDArray[np.float64]]:
    """Per-user NDCG@5, NDCG@10, MRR, HR@1, HR@5, HR@10 (keys as in :data:`RANKING_KEYS`).

    ``scores`` and ``target_index`` follow :func:`target_ranks`.
    """
    return rank_metrics(target_ranks(scores, target_index))


def rank_metrics(ranks: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """The per-user metrics of :func:`ranking_metrics` from 1-based target ranks (e.g. ranks
    gathered batch by batch in a full-catalogue ranking)."""
    return {
        "ndcg@5": ndcg_at_k(ranks, 5),
        "ndcg@10": ndcg_at_k(ranks, 10),
        "mrr": reciprocal_rank(ranks),
        "hr@1": hit_rate_at_k(ranks, 1),
        "hr@5": hit_rate_at_k(ranks, 5),
        "hr@10": hit_rate_at_k(ranks, 10),
    }


def summarise(per_user: Mapping[str, ArrayLike]) -> dict[str, float]:
    """Mean of each per-user metric array, as plain floats (same keys, same order).

    Raises:
        ValueError: if an array is empty (a mean over no users is not a result).
    """
    out: dict[str, float] = {}
    for key, values in per_user.items():
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            raise ValueError(f"metric {key!r} has no users")
        out[key] = float(v.mean())
    return out


def _round_rating(x: NDArray[np.float64]) -> NDArray[np.int64]:
    """Round half up, then clip to the 1..5 rating classes."""
    return np.clip(np.floor(x + 0.5), 1, N_RATING_CLASSES).astype(np.int64)


def rating_metrics(
    pred_rating: ArrayLike,
    pred_class: ArrayLike | None,
    true_rating: ArrayLike,
) -> dict[str, float | int]:
    """RMSE, MAE and 5-class accuracy of the rating heads.

    Args:
        pred_rating: ``(n,)`` regression predictions on the 1..5 scale.
        pred_class: either ``(n, 5)`` class logits/probabilities (column ``c`` is rating
            ``c + 1``; the argmax is the prediction), or ``(n,)`` predicted ratings as integers in
            1..5, or ``None`` to score the regression prediction rounded (half up) and clipped
            to 1..5.
        true_rating: ``(n,)`` true ratings; NaN means "no rating" and the row is excluded.

    Returns:
        ``rmse``, ``mae``, ``accuracy`` (true rating rounded half up and clipped to 1..5),
        ``n_rated`` (rows used) and ``n_missing`` (rows with a NaN true rating). With no rated
        rows the three scores are NaN.

    Raises:
        ValueError: on shape mismatches, NaN predictions on rated rows, or 1-D classes
            outside 1..5.
    """
    y = np.asarray(true_rating, dtype=np.float64)
    p = np.asarray(pred_rating, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"pred_rating {p.shape} and true_rating {y.shape} must be equal 1-D")
    if pred_class is None:
        cls = None
    else:
        c = np.asarray(pred_class)
        if c.ndim == 2 and c.shape == (y.size, N_RATING_CLASSES):
            if np.isnan(c.astype(np.float64)).any():
                raise ValueError("pred_class logits contain NaN")
            cls = np.argmax(c, axis=1).astype(np.int64) + 1
        elif c.ndim == 1 and c.shape == y.shape:
            if c.size and not np.issubdtype(c.dtype, np.integer):
                raise ValueError("1-D pred_class must hold integer ratings 1..5")
            cls = c.astype(np.int64)
            if cls.size and (cls.min() < 1 or cls.max() > N_RATING_CLASSES):
                raise ValueError("1-D pred_class must hold integer ratings 1..5 (not 0-based)")
        else:
            raise ValueError(
                f"pred_class must be ({y.size}, {N_RATING_CLASSES}) logits or ({y.size},) "
                f"classes, got {c.shape}"
            )
    rated = ~np.isnan(y)
    n_rated = int(rated.sum())
    out: dict[str, float | int] = {"n_rated": n_rated, "n_missing": int(y.size - n_rated)}
    if n_rated == 0:
        out.update(rmse=float("nan"), mae=float("nan"), accuracy=float("nan"))
        return out
    yr, pr = y[rated], p[rated]
    if np.isnan(pr).any():
        raise ValueError("pred_rating is NaN on a rated row")
    err = pr - yr
    pred_cls = _round_rating(pr) if cls is None else cls[rated]
    out["rmse"] = float(np.sqrt(np.mean(err**2)))
    out["mae"] = float(np.mean(np.abs(err)))
    out["accuracy"] = float(np.mean(pred_cls == _round_rating(yr)))
    return out


def random_ranker_expectation(n_candidates: int, k: int) -> dict[str, float]:
    """Closed-form expectations for a uniformly random ranker, one relevant item among n.

    The target's rank is uniform on ``1..n``, so

    * ``E[HR@k]   = min(k, n) / n``
    * ``E[NDCG@k] = (1/n) * sum_{r=1..min(k,n)} 1/log2(r+1)``
    * ``E[MRR]    = H_n / n`` with ``H_n = sum_{r=1..n} 1/r``

    Keys match :func:`ranking_metrics`: ``f"ndcg@{k}"``, ``f"hr@{k}"``, ``"mrr"``.
    """
    n, k = _check_k(n_candidates), _check_k(k)
    top = np.arange(1, min(k, n) + 1, dtype=np.float64)
    all_r = np.arange(1, n + 1, dtype=np.float64)
    return {
        f"ndcg@{k}": float(np.sum(1.0 / np.log2(top + 1.0)) / n),
        f"hr@{k}": min(k, n) / n,
        "mrr": float(np.sum(1.0 / all_r) / n),
    }
