"""Full-catalogue ranking beside the sampled protocol (Krichene & Rendle, KDD 2020: sampled
metrics can reorder models).

The target of each test user is ranked against every item except the user's own earlier items
(every interaction of the user but the target itself: after the k-core and de-duplication a
user meets an item once, and the test target is the last one), with the pessimistic tie rule
of :mod:`layerkd.evaluation.metrics`. Scores are computed and ranked in blocks of users, so
memory is one block times the catalogue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from layerkd.evaluation.metrics import rank_metrics, summarise, target_ranks
from layerkd.evaluation.stats import bootstrap_ci
from layerkd.records import Record

PROTOCOLS = ("sampled", "full")


def seen_items(
    test: pd.DataFrame, interactions: pd.DataFrame, items: pd.DataFrame
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(target item index per test row, item indices each test user saw before the target),
    item indices in ``items.parquet`` order (the order of every model's item features)."""
    index = {item: i for i, item in enumerate(items["item_id"].astype(str))}
    by_user = interactions.groupby(interactions["user_id"].astype(str))["item_id"]
    history = {u: [index[str(i)] for i in s] for u, s in by_user}
    targets = np.array([index[str(t)] for t in test["target"]], dtype=np.int64)
    seen = [
        np.array([i for i in history.get(str(u), []) if i != t], dtype=np.int64)
        for u, t in zip(test["user_id"], targets, strict=True)
    ]
    return targets, seen


def full_ranks(
    score_block: Callable[[np.ndarray], np.ndarray],
    targets: np.ndarray,
    seen: list[np.ndarray],
    block: int = 256,
) -> np.ndarray:
    """1-based rank of each target among all items minus the user's ``seen`` ones.

    ``score_block(rows)`` gives the (len(rows), n_items) scores of test rows ``rows``.
    """
    ranks = []
    for start in range(0, len(targets), block):
        rows = np.arange(start, min(start + block, len(targets)))
        s = np.array(score_block(rows), dtype=np.float64)  # a copy: masked below
        for r, row in enumerate(rows):
            s[r, seen[row]] = -np.inf
        ranks.append(target_ranks(s, targets[rows]))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


def full_record(ranks: np.ndarray, n_items: int, *, bootstrap: int, seed: int) -> Record:
    """The ``full`` part of an evaluation file: means, bootstrap 95% intervals, per-user arrays."""
    per_user = rank_metrics(ranks)
    ci = {k: list(bootstrap_ci(v, n_boot=bootstrap, seed=seed)[1:]) for k, v in per_user.items()}
    return {
        "n_items": int(n_items),
        "metrics": summarise(per_user),
        "ci": ci,
        "per_user": {k: v.tolist() for k, v in per_user.items()},
    }


def as_primary(rec: Record, primary: str) -> Record:
    """An evaluation record whose ``metrics``/``ci``/``per_user`` are those of the ``primary``
    protocol (what the report's tests and hypotheses read); the other protocol's metrics are
    kept under ``other`` with its name in ``other_protocol``. Its validation record (``valid``)
    switches to the primary protocol as well when it holds both."""
    if primary not in PROTOCOLS:
        raise ValueError(f"eval.primary={primary!r}: expected one of {PROTOCOLS}")
    full = rec.get("full")
    if full is None:
        if primary == "full":
            raise ValueError(
                f"{rec.get('model')}: eval.primary is full but its evaluation has no "
                "full-ranking metrics (eval.protocol lacks full): rerun its evaluation"
            )
        return {**rec, "protocol": "sampled", "other": None, "other_protocol": None}
    sampled = {k: rec[k] for k in ("metrics", "ci", "per_user")}
    if primary == "sampled":
        return {**rec, "protocol": "sampled", "other": full, "other_protocol": "full"}
    chosen = {k: full[k] for k in ("metrics", "ci", "per_user")}
    valid = rec.get("valid")
    if valid and valid.get("full"):  # the validation numbers in the primary protocol too
        valid = {**valid, **valid["full"], "protocol": "full"}
    return {**rec, **chosen, "protocol": "full", "other": sampled, "other_protocol": "sampled",
            "valid": valid}  # fmt: skip
