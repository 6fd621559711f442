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

from layerkd.evaluation.metrics import ranking_metrics, summarise
from layerkd.evaluation.rankers import popularity_scores, random_scores
from layerkd.evaluation.stats import bootstrap_ci
from layerkd.io import write_json


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
    *, samples: Path, interactions: Path, random: Path, popular: Path, evaluation: dict[str, Any]
) -> None:
    """The random and most-popular rankers on the same test candidates as every model
    (``evaluation`` is the ``eval`` section of the config)."""
    bootstrap, seed = evaluation["bootstrap"], evaluation["seed"]
    full = pd.read_parquet(samples)
    frame = test_rows(full, evaluation["max_users"], seed)
    test = frame[frame["split"] == "test"]
    users = test["user_id"].astype(str).tolist()
    cands = [list(c) for c in test["candidates"]]
    digest = candidates_digest(frame)
    train = training_interactions(full, pd.read_parquet(interactions))  # every held-out target
    rnd = random_scores(len(cands), len(cands[0]), seed)
    pop = popularity_scores(cands, train)
    for name, scores, path in (("random", rnd, random), ("popular", pop, popular)):
        rec = eval_record(
            name,
            "reference",
            scores,
            users,
            digest,
            bootstrap=bootstrap,
            seed=seed,
            extra={"params": 0},
        )
        write_json(path, rec)
