"""Shared training utilities: seeding, scoring a split, validation NDCG, optimiser + schedule."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from layerkd.evaluation.full import full_ranks
from layerkd.evaluation.metrics import rank_metrics, ranking_metrics
from layerkd.models.recmodel import RecModel, RecOutput
from layerkd.models.samples import SplitData
from layerkd.models.text import batches


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def score_split(
    model: RecModel,
    data: SplitData,
    batch_size: int,
    *,
    forward: Callable[[range], RecOutput] | None = None,
    desc: str = "score",
    users: list[torch.Tensor] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Candidate scores (N, C) and predicted ratings (N,) for every sample of ``data``.

    ``forward`` replaces the plain model call (used when inputs come from a state cache);
    a list passed as ``users`` receives each batch's user vectors (for full ranking).
    """
    model.eval()
    scores, ratings = [], []
    for rng in tqdm(batches(len(data), batch_size), desc=desc, unit="batch", leave=False):
        if forward is None:
            b, cand, _ = data.batch(rng)
            out = model(b, cand)
        else:
            out = forward(rng)
        scores.append(out.scores.float().cpu())
        ratings.append(out.rating.float().cpu())
        if users is not None:
            users.append(out.user.detach())
    return torch.cat(scores).numpy(), torch.cat(ratings).numpy()


def valid_ndcg5(scores: np.ndarray) -> float:
    """Mean NDCG@5 of a score matrix whose column 0 is the target."""
    return float(np.mean(ranking_metrics(scores)["ndcg@5"]))


FullRanking = tuple[np.ndarray, list[np.ndarray]]  # (target per sample, items each user saw)


def validation_ndcg5(
    model: RecModel,
    data: SplitData,
    batch_size: int,
    *,
    full: FullRanking | None = None,
    forward: Callable[[range], RecOutput] | None = None,
) -> float:
    """Validation NDCG@5 under the sampled protocol (the samples' candidates) or, with ``full``
    (:func:`~layerkd.evaluation.full.seen_items` of the same rows), the full one: each target
    against every item but the user's own."""
    users: list[torch.Tensor] | None = [] if full is not None else None
    scores, _ = score_split(model, data, batch_size, forward=forward, users=users)
    if full is None:
        return valid_ndcg5(scores)
    u = torch.cat(users or [])
    targets, seen = full
    ranks = full_ranks(lambda rows: model.score_all(u[rows]).float().cpu().numpy(), targets, seen)
    return float(np.mean(rank_metrics(ranks)["ndcg@5"]))


def optimizer_and_schedule(
    params: Iterable[nn.Parameter], lr: float, weight_decay: float, total: int, warmup: float
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW with linear warmup (share ``warmup`` of ``total`` steps) then cosine decay."""
    opt = torch.optim.AdamW(
        [p for p in params if p.requires_grad], lr=lr, weight_decay=weight_decay
    )
    n_warm = max(1, int(total * warmup))

    def factor(step: int) -> float:
        if step < n_warm:
            return (step + 1) / n_warm
        progress = (step - n_warm) / max(1, total - n_warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """A seeded shuffled split of ``range(n)`` into batches for one epoch."""
    perm = np.random.default_rng([seed, epoch]).permutation(n).tolist()
    return [perm[s : s + batch_size] for s in range(0, n, batch_size)]
