"""The recommender model: padding independence, keep-all student, save/load round trip."""

from __future__ import annotations

import copy

import torch

from layerkd.models.backbone import keep_layers
from layerkd.models.recmodel import load_recmodel, save_recmodel
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
