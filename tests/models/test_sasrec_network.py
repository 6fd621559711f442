"""The SASRec network and its training task: causality, padding invariance, no NaN, full
ranking against a hand loop, and the task's loss against a per-position reference."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from layerkd.config import settings
from layerkd.models.sasrec import SASRec, SasrecParams, SasrecTask, pad_left, trim
from tests.tiny import SMALL_SASREC

SMALL = settings(SasrecParams, "sasrec", **SMALL_SASREC)
pytestmark = pytest.mark.usefixtures("one_thread")


def _model(p: SasrecParams = SMALL, n_items: int = 20) -> SASRec:
    torch.manual_seed(0)
    return SASRec(n_items, replace(p, dropout=0.0)).eval()


def test_a_position_never_depends_on_later_items():
    model = _model()
    a = torch.tensor([[3, 7, 2, 9, 4, 11, 5, 8]])
    b = a.clone()
    b[0, 5:] = torch.tensor([1, 19, 13])
    with torch.no_grad():
        ha, hb, short = model(a), model(b), model(a[:, :5])
    torch.testing.assert_close(ha[:, :5], hb[:, :5], rtol=0, atol=1e-6)
    torch.testing.assert_close(ha[:, :5], short, rtol=0, atol=1e-6)  # appending changes nothing
    assert not torch.allclose(ha[:, 5:], hb[:, 5:])  # the later positions do see them


def test_padding_side_and_amount_do_not_change_a_score():
    model = _model()
    seq = [3, 7, 2, 9]
    left8, left12 = pad_left([seq], 8), pad_left([seq], 12)
    right8 = torch.tensor([seq + [0] * 4])
    bare = torch.tensor([seq])
    with torch.no_grad():
        vecs = [model.user_vectors(x) for x in (bare, left8, left12, right8)]
    for v in vecs[1:]:
        torch.testing.assert_close(v, vecs[0], rtol=0, atol=1e-5)
    cands = torch.tensor([[10, 3, 5, 17]])
    batch = pad_left([seq, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [6]], 12)  # in a batch, trimmed
    scores = model.score(batch, torch.cat([cands, cands, cands]))
    np.testing.assert_allclose(scores[0], model.score(bare, cands)[0], rtol=0, atol=1e-5)
    assert trim(left12).shape == (1, 4) and trim(right8).shape == (1, 8)


def test_one_item_and_empty_histories_give_finite_scores():
    model = _model()
    seqs = pad_left([[5], [], [4, 6]], 6)  # fully padded rows: every query sees itself
    with torch.no_grad():
        assert torch.isfinite(model(seqs)).all()
    scores = model.score(seqs, torch.tensor([[5, 1, 2]] * 3))
    assert np.isfinite(scores).all()
    with torch.no_grad():
        model.item.weight[2] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        model.score(seqs, torch.tensor([[5, 1, 2]] * 3))


def test_schema_defaults_are_the_documented_settings():
    p = settings(SasrecParams, "sasrec")
    assert (p.hidden, p.blocks, p.heads, p.dropout, p.max_len) == (64, 2, 2, 0.2, 50)
    assert (p.epochs, p.patience, p.lr, p.weight_decay, p.batch_size, p.seed) == (
        200, 10, 0.001, 0.0, 128, 0,
    )  # fmt: skip
    # the loop's settings: no warmup, no clipping (the SASRec paper's plain Adam), per epoch
    assert (p.warmup, p.max_grad_norm, p.grad_accum, p.eval_every, p.checkpoint_every) == (
        0.0, 0.0, 1, 0, 0,
    )  # fmt: skip


def test_full_ranks_match_a_hand_loop_over_the_catalogue():
    model = _model(n_items=12)
    seqs = pad_left([[3, 7, 2], [5], [1, 2, 3, 4, 11]], 6)
    targets = np.array([8, 0, 4])  # 0-based item indices
    seen = [np.array([2, 6, 1]), np.array([4]), np.array([], dtype=np.int64)]
    ranks = model.full_ranks(seqs, targets, seen)
    with torch.no_grad():
        for r in range(3):
            u = model.user_vectors(seqs[r : r + 1])[0]
            scores = (model.item.weight[1:] @ u).double().numpy()
            others = [j for j in range(12) if j != targets[r] and j not in set(seen[r])]
            want = 1 + sum(scores[j] >= scores[targets[r]] for j in others)  # ties pessimistic
            assert ranks[r] == want


def test_task_loss_is_next_item_cross_entropy_at_every_real_position():
    model = _model(n_items=12)
    seqs = [[3, 7, 2, 9], [5], [4, 6]]  # the one-item user has nothing to learn from: dropped
    task = SasrecTask(model, seqs, (torch.zeros(0, 4, dtype=torch.long),) * 2, max_len=3)
    assert len(task) == 2
    with torch.no_grad():
        got = float(task.loss([0, 1])["total"])
        terms = []
        for s in ([3, 7, 2, 9], [4, 6]):
            tail = s[-4:]  # max_len + 1 items: inputs s[:-1], targets s[1:]
            for t in range(1, len(tail)):
                u = model.user_vectors(torch.tensor([tail[:t]]))[0]
                logits = model.item.weight[1:] @ u
                terms.append(F.cross_entropy(logits[None], torch.tensor([tail[t] - 1])))
    assert got == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="no user has two training items"):
        SasrecTask(model, [[1], []], (torch.zeros(0, 1, dtype=torch.long),) * 2, max_len=3)
