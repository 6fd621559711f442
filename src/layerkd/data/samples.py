"""Chronological leave-one-out samples and seeded negative candidates.

Input: interactions sorted by ``(user_id, timestamp, item_id)`` (the deterministic tie-break) with
integer user and item codes. Per user with ``n`` interactions: position ``n-1`` is the test target,
``n-2`` the validation target, and up to ``train_samples_per_user`` earlier positions (each with at
least one history item; ``all``: every one of them) are training targets. A history is the ``history_len`` items right before
the target, oldest first.

Negatives of a sample are drawn without replacement from the items the user never interacted with
(anywhere in the data, future included), by a generator seeded with ``(seed, user index, split)``:
the result depends on nothing else, so it is the same whatever order users are processed in. A
user with several training samples draws them in position order from the same generator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

SPLITS = ("train", "valid", "test", "calibration")
SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
CALIBRATION_STREAM = 7  # the generator of the calibration subset: (seed, CALIBRATION_STREAM)
HALF_STREAM = 11  # the generator of the validation halves: (seed, HALF_STREAM)
SAMPLE_COLUMNS = (
    "split", "user_id", "history", "target", "target_rating", "candidates", "valid_half",
)  # fmt: skip


def sample_positions(lengths: np.ndarray, train_per_user: int) -> tuple[np.ndarray, ...]:
    """``(user_code, position, split_code)`` of every sample; users with fewer than 3 are skipped.

    Ordered by split (train, valid, test), then user, then position.
    """
    users = np.arange(len(lengths))
    ok = lengths >= 3
    out_u, out_p, out_s = [], [], []
    lo = np.maximum(1, lengths - 2 - train_per_user)
    n_train = np.where(ok, np.maximum(0, (lengths - 2) - lo), 0)
    tu = np.repeat(users, n_train)
    first = np.repeat(lo, n_train)
    offsets = np.arange(len(tu)) - np.repeat(np.cumsum(n_train) - n_train, n_train)
    out_u.append(tu)
    out_p.append(first + offsets)
    out_s.append(np.zeros(len(tu), dtype=np.int64))
    for code, back in ((1, 2), (2, 1)):
        out_u.append(users[ok])
        out_p.append(lengths[ok] - back)
        out_s.append(np.full(int(ok.sum()), code, dtype=np.int64))
    return np.concatenate(out_u), np.concatenate(out_p), np.concatenate(out_s)


def _draw(rng: np.random.Generator, touched: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """``k`` distinct item codes in ``[0, n_items)`` outside the sorted array ``touched``."""
    ranks = rng.choice(n_items - len(touched), size=k, replace=False)
    # the r-th untouched code is r + #{touched codes t_j with t_j - j <= r}
    shifted = touched - np.arange(len(touched))
    return ranks + np.searchsorted(shifted, ranks, side="right")


def check_enough_negatives(
    user_ids: np.ndarray, touched_counts: np.ndarray, n_items: int, need: np.ndarray
) -> None:
    """Raise ValueError naming the first user with fewer untouched items than negatives needed."""
    short = np.flatnonzero(n_items - touched_counts < need)
    if short.size:
        u = int(short[0])
        raise ValueError(
            f"user {user_ids[u]!r} has interacted with {int(touched_counts[u])} of {n_items} "
            "items, "
            f"leaving {n_items - int(touched_counts[u])} untouched items, but {int(need[u])} "
            f"negatives are needed ({short.size} user(s) affected); lower n_candidates / "
            "n_train_candidates or use a larger item set"
        )


def build_samples(
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    seq_items: np.ndarray,
    seq_ratings: np.ndarray,
    params: Any,
) -> pd.DataFrame:
    """All samples (train, valid, test, calibration) as a DataFrame of ``SAMPLE_COLUMNS``.

    ``user_ids``/``item_ids``: sorted unique ids (codes index them). ``starts``/``lengths``: each
    user's slice of ``seq_items``/``seq_ratings``, the chronologically sorted item codes/ratings.
    ``params``: a :class:`layerkd.data.prepare.PrepareParams`.
    """
    n_items = len(item_ids)
    per_user = params.train_samples_per_user
    if per_user == "all":  # every position with a history: as sequential recommenders train
        per_user = int(lengths.max(initial=0))
    su, sp, ss = sample_positions(lengths, int(per_user))
    has_train = np.bincount(su[ss == 0], minlength=len(user_ids)) > 0
    need = np.where(lengths >= 3, params.n_candidates, 0)
    need = np.maximum(need, np.where(has_train, params.n_train_candidates, 0))
    check_enough_negatives(user_ids, lengths, n_items, need)

    n_neg = np.where(ss == 0, params.n_train_candidates, params.n_candidates)
    candidates: list[list[str]] = [[] for _ in range(len(su))]
    order = np.lexsort((sp, ss, su))  # per user, per split, by position
    touched_of: dict[int, np.ndarray] = {}
    rng: np.random.Generator | None = None
    key: tuple[int, int] | None = None
    for j in order:
        u, s = int(su[j]), int(ss[j])
        if u not in touched_of:
            touched_of.clear()
            touched_of[u] = np.unique(seq_items[starts[u]: starts[u] + lengths[u]])
        if key != (u, s):
            key = (u, s)
            rng = np.random.default_rng([params.seed, u, s])
        assert rng is not None
        neg = _draw(rng, touched_of[u], n_items, int(n_neg[j]))
        target = int(seq_items[starts[u] + sp[j]])
        candidates[j] = [item_ids[target], *item_ids[neg].tolist()]

    hist_lo = np.maximum(0, sp - params.history_len)
    histories = [item_ids[seq_items[starts[u] + lo: starts[u] + p]].tolist()
                 for u, lo, p in zip(su, hist_lo, sp, strict=True)]
    split_names = np.array(SPLITS[:3], dtype=object)[ss]
    df = pd.DataFrame({
        "split": split_names,
        "user_id": user_ids[su],
        "history": histories,
        "target": item_ids[seq_items[starts[su] + sp]],
        "target_rating": seq_ratings[starts[su] + sp].astype(np.float64),
        "candidates": candidates,
    })
    train = df.index[df["split"] == "train"].to_numpy()
    n_cal = min(params.n_calibration, len(train))
    if n_cal > 0:
        picked = np.sort(np.random.default_rng([params.seed, CALIBRATION_STREAM]).choice(
            train, size=n_cal, replace=False))
        df = pd.concat([df, df.loc[picked].assign(split="calibration")], ignore_index=True)
    df["valid_half"] = valid_halves(df, params.seed)
    for col in ("split", "user_id", "target", "valid_half"):
        df[col] = df[col].astype("string")
    return df


def valid_halves(df: pd.DataFrame, seed: int) -> pd.Series:
    """Per sample, the half of the validation users it belongs to: ``select`` (early stopping
    of teacher and students, the layer-set screen) or ``judge`` (the report's validation
    numbers: gate T, check S, the summary's column); empty outside the validation split. The
    sorted validation users are permuted by ``default_rng([seed, HALF_STREAM])`` and the first
    ``ceil(n / 2)`` select, so the halves are disjoint and stable for a seed."""
    valid = df["split"] == "valid"
    users = np.sort(df.loc[valid, "user_id"].unique().astype(object))
    order = np.random.default_rng([seed, HALF_STREAM]).permutation(len(users))
    select = set(users[order[: (len(users) + 1) // 2]].tolist())
    half = np.where(df["user_id"].isin(select), "select", "judge").astype(object)
    return pd.Series(np.where(valid, half, None), index=df.index, dtype=object)
