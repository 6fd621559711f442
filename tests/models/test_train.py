"""Validation NDCG@5 under both protocols (what early stopping reads): the sampled one from the
samples' candidates, the full one against a hand loop over the catalogue."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layerkd.models.train import validation_ndcg5
from tests.tiny import tiny_model, tiny_split


def _by_hand(model, data, seen):
    """Per sample: rank of the target among every item but ``seen`` (ties count against it)."""
    gains = []
    with torch.no_grad():
        for i in range(len(data)):
            b, cand, _ = data.batch([i])
            every = model.score_all(model(b, cand).user)[0].tolist()
            target = int(cand[0, 0])
            others = [s for j, s in enumerate(every) if j != target and j not in seen[i]]
            rank = 1 + sum(s >= every[target] for s in others)
            gains.append(1 / math.log2(rank + 1) if rank <= 5 else 0.0)
    return sum(gains) / len(gains)


@pytest.mark.parametrize("items", ["text", "ids"])
def test_full_protocol_validation_ranks_against_the_catalogue(items):
    model, _ = tiny_model(items=items)
    data = tiny_split(n=6, items=items)
    targets = data.cand[:, 0].numpy()
    seen = [np.array([j for j in range(3) if j != t], dtype=np.int64) for t in targets]
    got = validation_ndcg5(model, data, 4, full=(targets, seen))
    assert got == pytest.approx(_by_hand(model, data, seen), abs=1e-12)
    sampled = validation_ndcg5(model, data, 4)
    assert sampled != got  # the two protocols rank against different sets


def test_sampled_protocol_is_the_candidates_ndcg():
    model, _ = tiny_model()
    data = tiny_split(n=5)
    with torch.no_grad():
        scores = model(*data.batch(range(5))[:2]).scores
    ranks = 1 + (scores[:, 1:] >= scores[:, :1]).sum(1)
    expected = float(np.mean([1 / math.log2(r + 1) if r <= 5 else 0.0 for r in ranks.tolist()]))
    assert validation_ndcg5(model, data, 2) == pytest.approx(expected, abs=1e-12)


def test_teacher_early_stopping_reads_the_full_protocol_when_given_it():
    import copy

    from layerkd.config import settings
    from layerkd.teacher.finetune import FinetuneParams, finetune

    model, _ = tiny_model(items="ids")
    train, valid = tiny_split(n=8, items="ids"), tiny_split(n=6, seed=1, items="ids")
    targets = valid.cand[:, 0].numpy()
    seen = [np.array([(t + 1) % 12], dtype=np.int64) for t in targets]
    before = validation_ndcg5(copy.deepcopy(model), valid, 4, full=(targets, seen))
    p = settings(FinetuneParams, "teacher.finetune", mode="lora", epochs=1, batch_size=4,
                 checkpoint_every=0, seed=0, loss="full")  # fmt: skip
    trained, log = finetune(model, train, valid, p, full=(targets, seen))
    evals = log["valid_ndcg@5"].dropna().tolist()
    assert evals[0] == pytest.approx(before, abs=1e-12)  # the full protocol, before training
    # the best weights by that protocol come back (LoRA merged into them)
    assert validation_ndcg5(trained, valid, 4, full=(targets, seen)) == pytest.approx(max(evals))
