"""How items reach the teacher (``teacher.items``): prompts with item slots, soft tokens, the
item tower, causality and padding in the ID modes, the full-catalogue objective, and students
and saved models in every mode."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from layerkd.models.backbone import keep_layers
from layerkd.models.items import history_tokens, slot
from layerkd.models.recmodel import RecHeads, load_recmodel, save_recmodel, task_loss
from layerkd.models.text import pad_left, tokenize_with_title_mask
from layerkd.models.train import score_split
from tests.tiny import tiny_model, tiny_split

MODES = ["text", "ids", "hybrid"]


def _words(tok, text):
    return tok([text], add_special_tokens=False)["input_ids"][0]


def test_ids_prompt_is_instruction_then_one_slot_per_item():
    _, tok = tiny_model()
    ids, masks, shown = history_tokens(tok, [["red cup", "blue lamp"]], [[4, 0]], 64, "ids")
    head = _words(tok, "The user bought these items, oldest first:")
    tail = _words(tok, " ; Next purchase:")
    assert ids[0] == head + [-5, -1] + tail
    assert masks[0] == [False] * len(head) + [True, True] + [False] * len(tail)
    assert slot(4) == -5 and slot(0) == -1 and shown == [2]


def test_hybrid_prompt_is_each_title_then_its_slot():
    _, tok = tiny_model()
    ids, masks, _ = history_tokens(tok, [["red cup", "blue lamp"]], [[4, 0]], 64, "hybrid")
    head = _words(tok, "The user bought these items, oldest first:")
    sep, tail = _words(tok, " ; "), _words(tok, " ; Next purchase:")
    red, blue = _words(tok, "red cup"), _words(tok, "blue lamp")
    assert ids[0] == head + red + [-5] + sep + blue + [-1] + tail
    expect = [False] * len(head) + [True] * (len(red) + 1) + [False] * len(sep)
    assert masks[0] == expect + [True] * (len(blue) + 1) + [False] * len(tail)


def test_ids_prompt_keeps_the_most_recent_items_when_truncated():
    _, tok = tiny_model()
    tail = _words(tok, " ; Next purchase:")
    ids, _, shown = history_tokens(tok, [["a"] * 5], [[0, 1, 2, 3, 4]], len(tail) + 2, "ids")
    assert ids[0] == [-4, -5] + tail and shown == [2]


def test_text_mode_is_the_title_prompt():
    _, tok = tiny_model()
    titles = [["red cup", "blue lamp"], ["pen"]]
    assert history_tokens(tok, titles, [[4, 0], [1]], 8, "text") == tokenize_with_title_mask(
        tok, titles, 8
    )


def test_text_prompts_count_the_titles_they_show_whole():
    _, tok = tiny_model()
    titles = [["red cup", "blue lamp", "pen"]]
    full, _, shown = tokenize_with_title_mask(tok, titles, 64)
    assert shown == [3]
    tail = len(_words(tok, "pen ; Next purchase:"))
    assert tokenize_with_title_mask(tok, titles, tail)[2] == [1]  # "pen ; next purchase :"
    assert tokenize_with_title_mask(tok, titles, tail + 2)[2] == [1]  # "lamp ; pen ...": cut
    assert tokenize_with_title_mask(tok, titles, tail + 3)[2] == [2]  # "blue lamp ; pen ..."


def test_item_text_is_cut_at_its_end():
    """An item text longer than the budget is encoded from its first tokens (name and brand
    come first), so it encodes as its own prefix does."""
    from layerkd.models.items import encode_items

    model, tok = tiny_model()
    long, head = "red cup blue lamp green pen", "red cup blue"
    got = encode_items(model.lm, tok, [long, head, "lamp pen"], max_tokens=3, batch_size=2)
    torch.testing.assert_close(got[0], got[1])
    assert not torch.allclose(got[0], got[2])


def test_unknown_mode_names_the_config_key():
    _, tok = tiny_model()
    with pytest.raises(ValueError, match="teacher.items='title'"):
        history_tokens(tok, [["a"]], [[0]], 8, "title")


@pytest.mark.parametrize("mode", ["ids", "hybrid"])
def test_soft_token_of_an_item_is_its_projected_table_row(mode):
    model, _ = tiny_model(items=mode)
    data = tiny_split(n=3, items=mode)
    b, _, _ = data.batch([0, 1, 2])
    emb = model.embed(b.input_ids)
    heads, tokens = model.heads, model.lm.get_input_embeddings().weight
    for r in range(3):
        for t, code in enumerate(b.input_ids[r].tolist()):
            if code < 0:
                row = heads.item_table[-code - 1]
                expected = heads.item_in.weight @ row + heads.item_in.bias
            else:
                expected = tokens[code]
            torch.testing.assert_close(emb[r, t], expected)


def test_text_histories_are_embedded_by_the_llm_itself():
    model, _ = tiny_model()
    b, _, _ = tiny_split(n=2).batch([0, 1])
    assert model.embed(b.input_ids) is None


@pytest.mark.parametrize("mode", ["ids", "hybrid"])
def test_state_at_an_item_does_not_depend_on_later_items(mode):
    model, _ = tiny_model(items=mode)
    row = [3, slot(2), slot(7), 5, slot(1), slot(9), 4]
    later = row[:3] + [6, slot(0), slot(11), 8]  # the same first three positions

    def states(ids):
        _, hs = model.user_states(pad_left([ids], 0), hidden_states=True)
        return hs[-1][0]

    torch.testing.assert_close(states(row)[:3], states(later)[:3], rtol=0, atol=1e-6)
    # the prefix alone ends in the same state: the user vector at position t reads items <= t
    torch.testing.assert_close(states(row[:3])[-1], states(row)[2], rtol=0, atol=1e-6)
    assert not torch.allclose(states(row)[4], states(later)[4])


@pytest.mark.parametrize("mode", MODES)
def test_padding_does_not_change_a_score(mode):
    model, _ = tiny_model(items=mode)
    data = tiny_split(n=6, items=mode)
    alone = torch.cat([model(*data.batch([i])[:2]).scores for i in range(6)])
    together = model(*data.batch(range(6))[:2]).scores
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_item_tower_of_each_mode(mode):
    model, _ = tiny_model(items=mode)
    h = model.heads
    text = h.item_proj(model.item_features) if mode != "ids" else 0
    table = h.item_table if mode != "text" else 0
    torch.testing.assert_close(h.item_vectors(model.item_features), text + table)
    u = torch.randn(2, 16)
    torch.testing.assert_close(model.score_all(u), u @ (text + table).T + h.item_bias)


def test_frozen_table_is_saved_but_never_a_parameter():
    frozen, _ = tiny_model(items="ids")
    trainable, _ = tiny_model(items="ids", item_table="trainable")
    assert "item_table" in frozen.heads.state_dict()
    assert not any(n.endswith("item_table") for n, _ in frozen.named_parameters())
    assert any(n.endswith("item_table") for n, _ in trainable.named_parameters())


def test_id_modes_need_a_table_of_the_catalogue_shape():
    with pytest.raises(ValueError, match=r"item table of shape \(12, 16\)"):
        RecHeads(32, 0, 12, 16, items="ids", table=torch.zeros(11, 16))


@pytest.mark.parametrize("mode", MODES)
def test_full_objective_is_cross_entropy_over_the_catalogue(mode):
    model, _ = tiny_model(items=mode)
    data = tiny_split(n=4, items=mode)
    b, cand, rating = data.batch(range(4))
    out = model(b, cand)
    every = model.score_all(out.user)
    expected = torch.stack([-F.log_softmax(every[r], -1)[cand[r, 0]] for r in range(4)]).mean()
    got = task_loss(out, rating, 0.0, objective="full")
    torch.testing.assert_close(got, expected)
    sampled = torch.stack([-F.log_softmax(out.scores[r], -1)[0] for r in range(4)]).mean()
    torch.testing.assert_close(task_loss(out, rating, 0.0), sampled)


@pytest.mark.parametrize("mode", MODES)
def test_keep_all_student_equals_its_teacher(mode):
    teacher, _ = tiny_model(items=mode)
    data = tiny_split(n=5, items=mode)
    student = copy.deepcopy(teacher)
    keep_layers(student.lm, [0, 1, 2, 3])
    assert (score_split(student, data, 2)[0] == score_split(teacher, data, 2)[0]).all()


@pytest.mark.parametrize("table", ["frozen", "trainable"])
@pytest.mark.parametrize("mode", ["ids", "hybrid"])
def test_saved_id_model_reloads_with_same_scores(tmp_path, mode, table):
    model, tok = tiny_model(items=mode, item_table=table)
    keep_layers(model.lm, [1, 3])
    data = tiny_split(n=4, items=mode)
    save_recmodel(model, tok, tmp_path / "m", {"kind": "student"})
    again, _, _ = load_recmodel(tmp_path / "m", model.item_features)
    assert again.items_mode == mode
    assert (score_split(again, data, 2)[0] == score_split(model, data, 2)[0]).all()
    is_param = any(n.endswith("item_table") for n, _ in again.named_parameters())
    assert is_param == (table == "trainable")


def test_prompt_stats_by_hand():
    data = tiny_split(n=3)
    data.shown = [(3, 3), (4, 2), (5, 4)]
    assert data.prompt_stats() == {
        "samples": 3,
        "mean_history_items": 4.0,
        "mean_items_shown": 3.0,
        "share_losing_an_item": pytest.approx(2 / 3),
    }
    assert data.subset([1]).prompt_stats()["mean_items_shown"] == 2.0
