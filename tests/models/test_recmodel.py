"""The recommender model: padding independence, keep-all student, save/load round trip,
reproducible gradients of the heads."""

from __future__ import annotations

import copy

import torch

from layerkd.models.backbone import keep_layers
from layerkd.models.recmodel import RecHeads, load_recmodel, save_recmodel
from layerkd.models.train import score_split
from tests.tiny import tiny_model, tiny_split


def test_scores_do_not_depend_on_batch_padding():
    model, _ = tiny_model()
    data = tiny_split(n=6)
    alone = torch.cat([model(*data.batch([i])[:2]).scores for i in range(6)])
    together = model(*data.batch(range(6))[:2]).scores
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


def test_score_is_dot_product_plus_item_bias():
    model, _ = tiny_model()
    data = tiny_split(n=2)
    b, cand, _ = data.batch([0, 1])
    out = model(b, cand)
    items = model.heads.item_proj(model.item_features)
    expected = torch.stack(
        [
            torch.stack([out.user[r] @ items[c] + model.heads.item_bias[c] for c in cand[r]])
            for r in range(2)
        ]
    )
    torch.testing.assert_close(out.scores, expected)


def test_keep_student_with_all_layers_reproduces_teacher(tmp_path):
    teacher, tok = tiny_model()
    data = tiny_split(n=5)
    student = copy.deepcopy(teacher)
    keep_layers(student.lm, [0, 1, 2, 3])
    s_scores, _ = score_split(student, data, 2)
    t_scores, _ = score_split(teacher, data, 2)
    assert (s_scores == t_scores).all()
    # and a real subset differs
    keep_layers(student.lm, [0, 3])
    assert student.lm.config.num_hidden_layers == 2
    assert not torch.allclose(
        torch.from_numpy(score_split(student, data, 2)[0]), torch.from_numpy(t_scores)
    )


def test_saved_student_reloads_with_same_scores(tmp_path):
    from transformers import AutoModelForCausalLM

    teacher, tok = tiny_model()
    keep_layers(teacher.lm, [1, 3])
    data = tiny_split(n=4)
    before, rating_before = score_split(teacher, data, 4)
    save_recmodel(teacher, tok, tmp_path / "s", {"kind": "student", "layers": [1, 3]})
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "s")
    assert plain.config.num_hidden_layers == 2
    again, tok2, meta = load_recmodel(tmp_path / "s", teacher.item_features)
    after, rating_after = score_split(again, data, 4)
    torch.testing.assert_close(torch.from_numpy(after), torch.from_numpy(before))
    torch.testing.assert_close(torch.from_numpy(rating_after), torch.from_numpy(rating_before))
    assert meta["layers"] == [1, 3] and meta["dims"]["n_items"] == 12


def test_head_gradients_are_bitwise_reproducible_with_two_threads():
    """Items chosen in many rows: indexing ``item_vecs[cand]`` gave 20 different gradients in
    20 identical backward passes here (accumulation in thread order); the heads must give one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        g = torch.Generator().manual_seed(0)
        heads = RecHeads(hidden=8, item_dim=64, n_items=60, dim=64)
        u, vecs0 = torch.randn(64, 64, generator=g), torch.randn(60, 64, generator=g)
        cand = torch.stack([torch.randperm(60, generator=g)[:50] for _ in range(64)])
        w = torch.randn(64, 50, generator=g)
        seen = set()
        for _ in range(20):
            heads.zero_grad(set_to_none=True)
            vecs = vecs0.clone().requires_grad_()
            rating, logits = heads.ratings(u, cand[:, 0], vecs)
            loss = (heads.scores(u, cand, vecs) * w).sum() + rating.sum() + logits.sum()
            loss.backward()
            grads = [vecs.grad, *(p.grad for p in heads.parameters() if p.grad is not None)]
            seen.add(b"".join(t.numpy().tobytes() for t in grads))
        assert len(seen) == 1
    finally:
        torch.set_num_threads(threads)
