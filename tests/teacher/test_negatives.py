"""Negatives of the sampled objective redrawn every epoch: distinct, seeded, never among the
user's items up to the target, and redrawn by the training loop at every epoch."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from layerkd.models.fit import FitParams, fit
from layerkd.models.samples import SplitData
from layerkd.teacher.negatives import EpochNegatives

N_ITEMS = 12
ITEMS = pd.DataFrame({"item_id": [f"i{n}" for n in range(N_ITEMS)]})
# user a bought i0, i1, i2, i3 (in that order); user b bought i5, i4
INTER = pd.DataFrame(
    {"user_id": ["a", "a", "a", "a", "b", "b"], "item_id": ["i0", "i1", "i2", "i3", "i5", "i4"]}
)


def _split() -> SplitData:
    # a's sample targets i1 (history i0), a's second targets i3, b's targets i5 (no history)
    cand = torch.tensor([[1, 9, 10, 11], [3, 9, 10, 11], [5, 9, 10, 11]])
    return SplitData("train", ["a", "a", "b"], [[0], [0, 1, 2], [7]], cand,
                     torch.zeros(3), pad_id=0)  # fmt: skip


def test_negatives_exclude_only_the_items_up_to_the_target():
    neg = EpochNegatives(_split(), INTER, ITEMS, seed=0)
    # by hand: the items a knew when i1 was the target are i0, i1; at i3 all four; b at i5: i5
    assert [k.tolist() for k in neg.known] == [[0, 1], [0, 1, 2, 3], [5]]
    seen_later = set()
    for epoch in range(1, 40):
        d = neg.draw(epoch)
        assert d.shape == (3, 3)
        for row, known in zip(d.tolist(), neg.known, strict=True):
            assert len(set(row)) == 3 and not set(row) & set(known.tolist())
            assert all(0 <= i < N_ITEMS for i in row)
        seen_later |= set(d[0].tolist())
    assert {2, 3} <= seen_later  # a's later items are fair negatives before she bought them
    assert neg.draw(3).tolist() == EpochNegatives(_split(), INTER, ITEMS, seed=0).draw(3).tolist()
    assert neg.draw(3).tolist() != neg.draw(4).tolist()
    assert neg.draw(3).tolist() != EpochNegatives(_split(), INTER, ITEMS, seed=1).draw(3).tolist()


def test_start_epoch_writes_them_into_the_split_and_keeps_the_target():
    data = _split()
    neg = EpochNegatives(data, INTER, ITEMS, seed=0)
    neg.start_epoch(2)
    assert data.cand[:, 0].tolist() == [1, 3, 5]
    assert data.cand[:, 1:].tolist() == neg.draw(2).tolist()


def test_a_target_missing_from_the_interactions_is_a_clear_error():
    with pytest.raises(ValueError, match="different preparations"):
        EpochNegatives(_split(), INTER[INTER["user_id"] == "a"], ITEMS, seed=0)


def test_the_loop_starts_every_epoch_on_the_task():
    class Task:
        def __init__(self) -> None:
            self.w = nn.Parameter(torch.ones(1))
            self.epochs: list[int] = []

        def start_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

        def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
            return {"total": (self.w**2).sum()}

        def evaluate(self) -> float:
            return 0.0

    task = Task()
    module = nn.Module()
    module.w = task.w
    p = FitParams(epochs=3, lr=0.1, weight_decay=0.0, warmup=0.1, batch_size=2, grad_accum=1,
                  max_grad_norm=1.0, patience=10, eval_every=0, checkpoint_every=0, seed=0,
                  autocast="off")  # fmt: skip
    fit(task, module, [task.w], 4, p)
    assert task.epochs == [1, 2, 3]
