"""Decoder families (Llama, Qwen2, Qwen3, Mistral, Gemma, Gemma2): tiny random models built
from their configs go through the teacher pass, ablation, layer subsets and both fine-tune
modes, each checked against the same slow references as the Llama tests."""

from __future__ import annotations

import copy

import pytest
import torch

from layerkd.config import settings
from layerkd.models.backbone import decoder, keep_layers
from layerkd.models.recmodel import RecHeads, RecModel
from layerkd.models.train import score_split
from layerkd.teacher.cache import calibration_pass
from layerkd.teacher.finetune import FinetuneParams, finetune
from tests.importance.test_ablation import assert_ablation_equals_deleting_each_layer
from tests.teacher.test_cache import W_RATING, _reference
from tests.tiny import tiny_split

SIZES = {
    "vocab_size": 32,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "pad_token_id": 0,
}
FAMILIES = {
    "llama": {},
    "qwen2": {},  # biases on q/k/v
    "qwen3": {"head_dim": 8},  # RMSNorm on queries and keys
    "mistral": {"sliding_window": None},
    "gemma": {"head_dim": 8},  # scaled embeddings, (1 + w) RMSNorm
    "gemma2": {"head_dim": 8, "sliding_window": 256, "query_pre_attn_scalar": 8},
}


def family_model(family: str, seed: int = 0) -> RecModel:
    """A tiny random :class:`RecModel` of ``family`` (sdpa attention, fp32)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(family, **SIZES, **FAMILIES[family])
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)  # sdpa where supported
    heads = RecHeads(32, 8, 12, 16)
    with torch.no_grad():
        heads.item_bias.normal_(0, 0.1)
    return RecModel(lm, heads, torch.randn(12, 8)).eval()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_teacher_pass_matches_per_sample_loop(family):
    model = family_model(family)
    assert type(model.lm).__name__.lower().startswith(family)
    attn = model.lm.config._attn_implementation
    data = tiny_split(n=5)
    got = calibration_pass(model, data, batch_size=3, w_rating=W_RATING)
    ref = _reference(model, data)
    for key, expected in ref.items():
        torch.testing.assert_close(got["sums"][key], expected, rtol=5e-4, atol=1e-6, msg=key)
    assert model.lm.config._attn_implementation == attn  # eager only during the pass


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ablation_equals_deleting_the_layer(family):
    model = family_model(family, seed=1)
    assert_ablation_equals_deleting_each_layer(model, tiny_split(n=5, seed=2), batch_size=3)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_keep_all_layers_reproduces_the_model_and_embeddings_path_matches_ids(family):
    model = family_model(family, seed=2)
    data = tiny_split(n=5, seed=3)
    full, _ = score_split(model, data, 2)
    student = copy.deepcopy(model)
    keep_layers(student.lm, [0, 1, 2, 3])
    assert (score_split(student, data, 2)[0] == full).all()
    # the fine-tune "top" mode feeds cached states as inputs_embeds: from the embedding layer
    # they must give what token ids give (Gemma scales its embeddings inside that layer)
    b, cand, _ = data.batch(range(5))
    with torch.no_grad():
        emb = decoder(model.lm).embed_tokens(b.input_ids)
        via_embeds = model(b, cand, inputs_embeds=emb).scores
        via_ids = model(b, cand).scores
    torch.testing.assert_close(via_embeds, via_ids, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["top", "lora"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_finetune_modes_train_and_change_only_what_they_should(family, mode):
    model = family_model(family, seed=3)
    data = tiny_split(n=8, seed=4)  # validated on its own training samples: it must improve
    lower = copy.deepcopy(decoder(model.lm).layers[0].state_dict())
    params = settings(
        FinetuneParams,
        "teacher.finetune",
        seed=0,
        mode=mode,
        top_layers=1,
        epochs=3,
        lr=2e-2,
        batch_size=4,
        patience=3,
        lora_r=2,
    )
    tuned, log = finetune(model, data, data, params)
    valid = log["valid_ndcg@5"].dropna()
    assert valid.max() > valid.iloc[0]  # so the returned (best) model is a trained one
    assert "lora" not in " ".join(n for n, _ in tuned.lm.named_parameters())  # merged
    layer0 = decoder(tuned.lm).layers[0].state_dict()
    same = all(torch.equal(layer0[k], v) for k, v in lower.items())
    assert same == (mode == "top")  # top mode leaves the lower layers alone; LoRA adapts them
