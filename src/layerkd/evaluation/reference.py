"""Evaluation records and the reference rankers (random, most popular), without torch.

Every model is scored on the same test candidates; ``candidates_sha256`` in each record lets
the report assert it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layerkd.evaluation.full import full_ranks, full_record, seen_items
from layerkd.evaluation.metrics import ranking_metrics, summarise
from layerkd.evaluation.rankers import popularity_scores, random_scores
from layerkd.evaluation.stats import bootstrap_ci
from layerkd.io import write_json
from layerkd.records import Record


def test_rows(frame: pd.DataFrame, max_users: int | None, seed: int) -> pd.DataFrame:
    """The samples every model is evaluated on: the whole ``frame`` with its test split cut to
    a fixed seeded subset of ``max_users`` test users (``eval.max_users``; None: all), in their
    original order, so every model sees the same users."""
    test = frame["split"] == "test"
    if max_users is None or max_users >= int(test.sum()):
        return frame
    pos = np.flatnonzero(test.to_numpy())
    chosen = np.sort(np.random.default_rng([seed, 11]).choice(len(pos), max_users, replace=False))
    keep = ~test.to_numpy()
    keep[pos[chosen]] = True
    return frame.loc[keep].reset_index(drop=True)


def candidates_digest(samples: pd.DataFrame, split: str = "test") -> str:
    """sha256 over (user, candidates) of a split: equal digests = identical candidate sets."""
    rows = samples[samples["split"] == split]
    h = hashlib.sha256()
    for user, cand in zip(rows["user_id"], rows["candidates"], strict=True):
        h.update(f"{user}:{','.join(map(str, cand))}\n".encode())
    return h.hexdigest()


def eval_record(
    name: str,
    kind: str,
    scores: np.ndarray,
    user_ids: list[str],
    digest: str,
    *,
    bootstrap: int,
    seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics (means, bootstrap 95% intervals, per-user arrays) of one score matrix."""
    per_user = ranking_metrics(scores)
    ci = {k: list(bootstrap_ci(v, n_boot=bootstrap, seed=seed)[1:]) for k, v in per_user.items()}
    return {
        "model": name,
        "kind": kind,
        "n_users": len(user_ids),
        "n_candidates": int(scores.shape[1]),
        "candidates_sha256": digest,
        "metrics": summarise(per_user),
        "ci": ci,
        "user_ids": user_ids,
        "per_user": {k: v.tolist() for k, v in per_user.items()},
        **(extra or {}),
    }


def training_interactions(samples: pd.DataFrame, interactions: pd.DataFrame) -> pd.DataFrame:
    """Interactions minus every valid/test target (what a ranker may learn popularity from)."""
    held = samples[samples["split"].isin(["valid", "test"])][["user_id", "target"]]
    held = held.rename(columns={"target": "item_id"}).assign(_held=True)
    merged = interactions.merge(held, on=["user_id", "item_id"], how="left")
    return merged[merged["_held"].isna()].drop(columns="_held")


def evaluate_reference(
    *,
    samples: Path,
    interactions: Path,
    item_table: Path,
    random: Path,
    popular: Path,
    evaluation: dict[str, Any],
) -> None:
    """The random and most-popular rankers on the same test candidates as every model
    (``evaluation`` is the ``eval`` section of the config), and with ``full`` in its
    ``protocol`` on the whole catalogue too (the user's earlier items excluded)."""
    bootstrap, seed = evaluation["bootstrap"], evaluation["seed"]
    whole = pd.read_parquet(samples)
    frame = test_rows(whole, evaluation["max_users"], seed)
    test = frame[frame["split"] == "test"].reset_index(drop=True)
    users = test["user_id"].astype(str).tolist()
    cands = [list(c) for c in test["candidates"]]
    digest = candidates_digest(frame)
    seen_table = pd.read_parquet(interactions)
    train = training_interactions(whole, seen_table)  # every held-out target left out
    rnd = random_scores(len(cands), len(cands[0]), seed)
    pop = popularity_scores(cands, train)
    full: dict[str, Record] = {}
    if "full" in evaluation["protocol"]:
        items = pd.read_parquet(item_table)
        targets, seen = seen_items(test, seen_table, items)
        counts = popularity_scores(items["item_id"].tolist(), train)
        rng = np.random.default_rng([seed, 1])  # blocks drawn in order: fixed for a seed
        blocks = {
            "random": lambda rows: rng.random((len(rows), len(items))),
            "popular": lambda rows: np.broadcast_to(counts, (len(rows), len(items))),
        }
        for name, block in blocks.items():
            ranks = full_ranks(block, targets, seen)
            full[name] = full_record(ranks, len(items), bootstrap=bootstrap, seed=seed)
    for name, scores, path in (("random", rnd, random), ("popular", pop, popular)):
        extra: dict[str, Any] = {"params": 0}
        if name in full:
            extra["full"] = full[name]
        rec = eval_record(
            name, "reference", scores, users, digest, bootstrap=bootstrap, seed=seed, extra=extra
        )
        write_json(path, rec)
