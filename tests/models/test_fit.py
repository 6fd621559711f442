"""The one training loop (:mod:`layerkd.models.fit`): a non-finite loss stops the run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerkd.config import settings
from layerkd.models.fit import FitParams, fit


class _Task:
    """A one-weight regression whose loss turns NaN from its ``bad``-th call on."""

    def __init__(self, bad: int) -> None:
        self.w = nn.Parameter(torch.ones(1))
        self.calls, self.bad = 0, bad

    def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
        self.calls += 1
        total = (self.w - 3.0).pow(2).sum()
        return {"total": total * float("nan") if self.calls >= self.bad else total}

    def evaluate(self) -> float:
        return -float(self.w.detach().sub(3.0).abs())


def test_a_non_finite_loss_stops_the_run_before_the_update():
    task = _Task(bad=3)
    module = nn.Module()
    module.w = task.w
    p = settings(FitParams, "distill", seed=0, batch_size=1, epochs=2, checkpoint_every=0)
    with pytest.raises(FloatingPointError, match="non-finite training loss .* step 3"):
        fit(task, module, [task.w], 4, p)
    assert torch.isfinite(task.w).all()  # the NaN step changed nothing
    finite = _Task(bad=10**9)
    module.w = finite.w
    log = fit(finite, module, [finite.w], 4, p)
    assert log["total"].notna().sum() == 8  # 2 epochs x 4 one-sample steps
