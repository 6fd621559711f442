"""Each distillation loss term against a hand computation on tiny tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from layerkd.config import settings
from layerkd.models.recmodel import RecOutput
from layerkd.student.distill import DistillParams, distill_loss, hidden_loss, kd_loss


def _params(**kw):
    """Distillation settings: the schema defaults, with the loop settings these tests were
    written for (3 epochs, every validation sample, no checkpoints), then ``kw``."""
    base = {"epochs": 3, "valid_samples": None, "checkpoint_every": 0, "seed": 0}
    return settings(DistillParams, "distill", **{"train_embeddings": False, **base, **kw})


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
    p = _params(w_task=1.0, w_kd=0.5, w_hidden=0.0, w_rating=0.0, temperature=1.0)
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
        _params(w_task=0.0, w_kd=1.0, w_rating=0.0, temperature=1.0),
    )
    assert set(only_kd) == {"kd", "total"}


def test_rating_term_by_hand_and_unknown_ratings_ignored():
    # predicted rating 3, true 4: MSE 1; logits all zero: CE = ln 5
    out = _out([[0.0, 0.0], [0.0, 0.0]], rating=(3.0, 3.0))
    p = _params(w_task=0.0, w_kd=0.0, w_rating=2.0)
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
            _params(w_hidden=1.0),
        )


def test_hidden_term_through_learned_projection_by_hand():
    # compact student: states of width 1 projected by a (2 x 1) map [[1], [0]] to width 2
    proj = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        proj.weight.copy_(torch.tensor([[1.0], [0.0]]))
    s = proj(torch.tensor([[[2.0]]]))  # -> [2, 0]
    t = torch.tensor([[[1.0, 1.0]]])
    # cos = 2 / (2 * sqrt 2) = 1/sqrt 2; MSE = ((2-1)^2 + (0-1)^2) / 2 = 1
    expected = (1 - 1 / math.sqrt(2)) + 0.1 * 1.0
    loss = hidden_loss(s, t, beta=0.1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0


def test_zero_weight_terms_are_not_even_computed():
    """A term with weight 0 is off: garbage (NaN) inputs of that term do not reach the total."""
    out = _out([[1.0, 0.0]], rating=(3.0,))
    nan_teacher = torch.full((1, 2), float("nan"))
    p = _params(w_task=1.0, w_kd=0.0, w_hidden=0.0, w_rating=0.0)
    terms = distill_loss(out, torch.tensor([float("nan")]), nan_teacher, None, None, p)
    assert set(terms) == {"task", "total"} and math.isfinite(terms["total"].item())
    nan_states = torch.full((1, 2, 3), float("nan"))
    p = _params(w_task=0.0, w_kd=1.0, w_hidden=0.0, w_rating=0.0, temperature=1.0)
    terms = distill_loss(out, torch.tensor([3.0]), torch.zeros(1, 2), nan_states, nan_states, p)
    assert set(terms) == {"kd", "total"} and math.isfinite(terms["total"].item())
    # and the hidden term alone, by hand (identical states: loss 0)
    same = torch.ones(1, 2, 3)
    p = _params(w_task=0.0, w_kd=0.0, w_hidden=2.0, w_rating=0.0)
    terms = distill_loss(out, torch.tensor([3.0]), nan_teacher, same, same, p)
    assert set(terms) == {"hidden", "total"}
    assert terms["total"].item() == pytest.approx(0.0, abs=1e-6)


def _run(p: DistillParams, n: int = 8):
    from layerkd.student.distill import distill
    from tests.tiny import tiny_model, tiny_split

    student, _ = tiny_model(seed=0)
    train, valid = tiny_split(n=n, seed=1), tiny_split(n=6, seed=2)
    teacher = {"scores": torch.randn(n, 5), "hidden": torch.randn(n, 4, 32)}
    return distill(student, [0, 1, 2, 3], teacher, train, valid, p)


def test_gradient_accumulation_matches_one_large_batch():
    base = dict(epochs=1, lr=1e-2, w_hidden=0.5, patience=5, train_embeddings=True)
    big, log_big = _run(_params(batch_size=4, grad_accum=1, **base))
    acc, log_acc = _run(_params(batch_size=2, grad_accum=2, **base))
    steps = log_big.dropna(subset=["total"])
    assert len(steps) == 2 == len(log_acc.dropna(subset=["total"]))
    np.testing.assert_allclose(
        steps["total"].to_numpy(), log_acc.dropna(subset=["total"])["total"], rtol=1e-4
    )
    for (n1, a), (_, b) in zip(big.state_dict().items(), acc.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=n1)


def test_log_has_a_row_per_step_and_per_eval_and_early_stopping_stops():
    _, log = _run(_params(epochs=6, batch_size=4, lr=1e-9, patience=1))
    evals = log.dropna(subset=["valid_ndcg@5"])
    # a learning rate of 1e-9 cannot improve NDCG@5: stop after the first epoch's evaluation
    assert evals["epoch"].tolist() == [0, 1]
    assert log.dropna(subset=["total"])["step"].tolist() == [1, 2]
    assert {"lr", "task", "kd", "rating"} <= set(log.columns)
    _, log = _run(_params(epochs=1, batch_size=2, eval_every=3, patience=9))
    assert log.dropna(subset=["valid_ndcg@5"])["step"].tolist() == [0, 3, 4]


def test_frozen_embeddings_stay_put_and_bf16_autocast_runs_on_cpu():
    from tests.tiny import tiny_model

    before = tiny_model(seed=0)[0].lm.get_input_embeddings().weight.detach().clone()
    student, log = _run(_params(epochs=1, batch_size=4, autocast="bf16"))
    assert torch.equal(student.lm.get_input_embeddings().weight, before)
    assert log["total"].dropna().map(math.isfinite).all()


def test_validation_subset_is_fixed_and_used():
    from layerkd.student.distill import distill_setup
    from tests.tiny import tiny_model, tiny_split

    student, _ = tiny_model(seed=0)
    teacher = {"scores": torch.randn(8, 5), "hidden": torch.randn(8, 4, 32)}
    runs = [
        distill_setup(student, [0, 1], teacher, tiny_split(n=8), tiny_split(n=9, seed=2), p)[0]
        for p in (_params(valid_samples=4, seed=1), _params(valid_samples=4, seed=2))
    ]
    assert len(runs[0].valid) == 4 and runs[0].valid.user_ids == runs[1].valid.user_ids


@pytest.mark.parametrize("mode", ["text", "ids", "hybrid"])
def test_catalogue_kd_target_is_the_teachers_full_catalogue_scores(mode):
    import copy

    from layerkd.models.backbone import keep_layers
    from layerkd.student.distill import distill_setup
    from layerkd.teacher.cache import train_pass
    from tests.tiny import tiny_model, tiny_split

    teacher, _ = tiny_model(items=mode)
    train, valid = tiny_split(n=6, items=mode), tiny_split(n=3, seed=1, items=mode)
    cached = train_pass(teacher, train, 4, hidden=False)  # scores and user vectors only
    assert set(cached) == {"scores", "user"}  # nothing n_items wide is cached
    student = copy.deepcopy(teacher)
    keep_layers(student.lm, [0, 2])
    p = _params(kd="catalogue", w_hidden=0.0)
    task, _, _ = distill_setup(student, [0, 2], cached, train, valid, p)
    with torch.no_grad():
        expected = teacher.score_all(cached["user"])
        b, cand, _ = train.batch(range(6))
        assert torch.equal(teacher(b, cand).catalogue, expected)  # what the teacher computed
    from layerkd.student.distill import catalogue_target

    assert task.t_items is not None
    torch.testing.assert_close(catalogue_target(cached["user"], *task.t_items), expected)
    # the KD term then compares the student's scores of every item with it
    out = student(b, cand)
    terms = distill_loss(out, torch.full((6,), float("nan")), expected, None, None, p)
    torch.testing.assert_close(terms["kd"], kd_loss(out.catalogue, expected, p.temperature))


def test_unknown_kd_target_names_the_config_key():
    from layerkd.student.distill import distill_setup
    from tests.tiny import tiny_model, tiny_split

    model, _ = tiny_model()
    train = tiny_split(n=2)
    cached = {"scores": torch.zeros(2, 5), "user": torch.zeros(2, 16)}
    with pytest.raises(ValueError, match="distill.kd='items'"):
        distill_setup(model, [0, 1, 2, 3], cached, train, train, _params(kd="items", w_hidden=0))
