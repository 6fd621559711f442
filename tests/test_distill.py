"""Each distillation loss term against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from layerkd.distill import DistillParams, distill_loss, hidden_loss, kd_loss
from layerkd.models.recmodel import RecOutput


def _out(scores, rating=(3.0,), logits=None):
    scores = torch.tensor(scores, dtype=torch.float32)
    n = scores.shape[0]
    logits = torch.zeros(n, 5) if logits is None else torch.tensor(logits)
    return RecOutput(scores, torch.tensor(rating), logits, torch.zeros(n, 2))


def test_kd_loss_by_hand():
    # teacher logits [0, ln 3] at T=1 -> p_t = [1/4, 3/4]; student [0, 0] -> p_s = [1/2, 1/2]
    # KL = 1/4 ln(1/2) + 3/4 ln(3/2)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    got = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, math.log(3)]]), 1.0)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # T = 2 on doubled logits gives the same distributions, scaled by T^2 = 4
    got2 = kd_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 2 * math.log(3)]]), 2.0)
    assert got2.item() == pytest.approx(4 * expected, rel=1e-6)
    assert kd_loss(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 2.0]]), 3.0).item() == 0.0


def test_hidden_loss_by_hand():
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (B=1, k=2, H=2)
    t = torch.tensor([[[0.0, 1.0], [0.0, 2.0]]])
    # layer 0: cos = 0 -> 1 - 0 = 1; MSE = ((1-0)^2 + (0-1)^2)/2 = 1 -> 1 + 0.5 * 1 = 1.5
    # layer 1: identical -> 0
    assert hidden_loss(s, t, beta=0.5).item() == pytest.approx(1.5)


def test_total_is_weighted_sum_and_zero_weights_switch_terms_off():
    out = _out([[2.0, 0.0]], rating=(4.0,))
    rating = torch.tensor([4.0])
    teacher = torch.tensor([[0.0, 0.0]])
    p = DistillParams(w_task=1.0, w_kd=0.5, w_hidden=0.0, w_rating=0.0, temperature=1.0)
    terms = distill_loss(out, rating, teacher, None, None, p)
    ce = -math.log(math.exp(2) / (math.exp(2) + 1))  # target in column 0
    p_s = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    kl = 0.5 * math.log(0.5 / p_s[0]) + 0.5 * math.log(0.5 / p_s[1])
    assert terms["task"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["kd"].item() == pytest.approx(kl, rel=1e-6)
    assert set(terms) == {"task", "kd", "total"}
    assert terms["total"].item() == pytest.approx(ce + 0.5 * kl, rel=1e-6)
    only_kd = distill_loss(
        out,
        rating,
        teacher,
        None,
        None,
        DistillParams(w_task=0.0, w_kd=1.0, w_rating=0.0, temperature=1.0),
    )
    assert set(only_kd) == {"kd", "total"}


def test_rating_term_by_hand_and_unknown_ratings_ignored():
    # predicted rating 3, true 4: MSE 1; logits all zero: CE = ln 5
    out = _out([[0.0, 0.0], [0.0, 0.0]], rating=(3.0, 3.0))
    p = DistillParams(w_task=0.0, w_kd=0.0, w_rating=2.0)
    terms = distill_loss(out, torch.tensor([4.0, float("nan")]), torch.zeros(2, 2), None, None, p)
    # sample 2 has no rating: contributes 0 to the mean over the batch of 2
    assert terms["rating"].item() == pytest.approx((1 + math.log(5)) / 2, rel=1e-6)
    assert terms["total"].item() == pytest.approx(1 + math.log(5), rel=1e-6)


def test_hidden_term_needs_states():
    with pytest.raises(ValueError, match="w_hidden"):
        distill_loss(
            _out([[1.0, 0.0]]),
            torch.tensor([3.0]),
            torch.zeros(1, 2),
            None,
            None,
            DistillParams(w_hidden=1.0),
        )
