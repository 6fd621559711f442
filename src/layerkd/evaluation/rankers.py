"""Reference rankers scored on exactly the candidates the models see.

Both return scores in the :mod:`layerkd.metrics` layout (column 0 is the target when the
candidate lists put the target first, as ``samples.parquet`` does), so they go through the same
:func:`layerkd.metrics.ranking_metrics` as the teacher and the students.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = ["popularity_scores", "random_scores"]


def random_scores(n_users: int, n_candidates: int, seed: int) -> NDArray[np.float64]:
    """Uniform ``[0, 1)`` scores of shape ``(n_users, n_candidates)`` from ``seed``.

    Continuous scores make ties (and so the pessimistic tie rule) practically impossible, so the
    target's rank is uniform on ``1..n_candidates`` and the expected metrics are those of
    :func:`layerkd.metrics.random_ranker_expectation`.
    """
    if n_users < 0 or n_candidates < 1:
        raise ValueError(f"need n_users >= 0 and n_candidates >= 1, got {n_users}, {n_candidates}")
    return np.random.default_rng(seed).random((n_users, n_candidates))


def popularity_scores(
    candidates: Sequence[Sequence[object]] | ArrayLike,
    train_interactions: pd.DataFrame,
) -> NDArray[np.float64]:
    """Score each candidate by its number of interactions in the training table.

    Args:
        candidates: item ids, either one list per user (all the same length) giving an
            ``(n_users, n_candidates)`` result, or a single 1-D list (e.g. the whole catalogue for
            full ranking) giving an ``(n_items,)`` result.
        train_interactions: a table with an ``item_id`` column; each row counts once. Pass only
            training interactions, or the target leaks into its own score.

    Returns:
        Float counts; items absent from ``train_interactions`` score 0. Items with equal counts
        tie, and :func:`layerkd.metrics.target_ranks` ranks such ties pessimistically.

    Raises:
        ValueError: if ``item_id`` is missing or the candidate lists are ragged.
    """
    if "item_id" not in train_interactions.columns:
        raise ValueError("train_interactions needs an 'item_id' column")
    arr = _as_id_array(candidates)
    if arr.ndim not in (1, 2):
        raise ValueError(f"candidates must be 1-D or 2-D, got shape {arr.shape}")
    counts = train_interactions["item_id"].value_counts()
    flat = pd.Series(arr.ravel(), dtype=object)
    mapped = flat.map(counts)
    if flat.size and len(counts) and mapped.isna().all():
        warnings.warn(
            "no candidate item occurs in train_interactions (id type mismatch?); "
            "all popularity scores are 0",
            stacklevel=2,
        )
    return mapped.fillna(0).to_numpy(dtype=np.float64).reshape(arr.shape)


def _as_id_array(candidates: Sequence[Sequence[object]] | ArrayLike) -> np.ndarray:
    """Candidate ids as a 1-D or 2-D array; rows may be lists, tuples, arrays (parquet lists)."""
    if isinstance(candidates, np.ndarray) and candidates.dtype != object:
        return candidates
    items = list(candidates)  # type: ignore[arg-type]
    is_row = [isinstance(r, (list, tuple, np.ndarray, pd.Series)) for r in items]
    if any(is_row) and not all(is_row):
        raise ValueError("candidates mix item ids and lists of item ids")
    if not any(is_row):
        arr = np.empty(len(items), dtype=object)
        arr[:] = items
        return arr
    lengths = {len(r) for r in items}
    if len(lengths) > 1:
        raise ValueError(f"candidate lists have different lengths: {sorted(lengths)}")
    arr = np.empty((len(items), lengths.pop()), dtype=object)
    for i, row in enumerate(items):
        arr[i, :] = list(row)
    return arr
