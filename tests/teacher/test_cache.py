"""The teacher pass against slow, obvious per-sample reference implementations."""

from __future__ import annotations

import math

import pytest
import torch

from layerkd.models.backbone import decoder
from layerkd.models.recmodel import task_loss
from layerkd.teacher.cache import (
    ROW_KEYS,
    calibration_pass,
    merge_shards,
    shard_indices,
    train_pass,
)
from tests.tiny import tiny_model, tiny_split

W_RATING = 0.5


def _recorder(outs, li):
    """A forward hook storing (input, output) of layer ``li`` in ``outs``."""

    def hook(_m, args, kwargs, out):
        outs[li] = (kwargs.get("hidden_states", args[0] if args else None), out)

    return hook


def _reference(model, data):
    """Per-sample loop: one sample per forward/backward, statistics read off directly."""
    layers = list(decoder(model.lm).layers)
    n_layers = len(layers)
    ref = {
        k: torch.zeros(n_layers, dtype=torch.float64)
        for k in ("fisher", "gradient", "taylor", "block_influence", "angular", "attention")
    }
    for i in range(len(data)):
        b, cand, rating = data.batch([i])  # batch of one: no padding at all
        outs = {}
        hooks = [
            layer.register_forward_hook(_recorder(outs, li), with_kwargs=True)
            for li, layer in enumerate(layers)
        ]
        model.zero_grad(set_to_none=True)
        out = model(b, cand)
        for h in hooks:
            h.remove()
        for li in range(n_layers):
            outs[li][1].retain_grad()
        loss = task_loss(out, rating, W_RATING)
        loss.backward()
        for li, layer in enumerate(layers):
            ref["fisher"][li] += sum(float(p.grad.pow(2).sum()) for p in layer.parameters())
            ref["taylor"][li] += sum(float((p * p.grad).sum()) for p in layer.parameters())
            x, y = outs[li]
            ref["gradient"][li] += float(y.grad.pow(2).sum().sqrt())
            cos = [
                float(torch.nn.functional.cosine_similarity(x[0, t], y[0, t], dim=0))
                for t in range(x.shape[1])
            ]
            ref["block_influence"][li] += 1 - sum(cos) / len(cos)
            ref["angular"][li] += math.acos(max(-1.0, min(1.0, cos[-1]))) / math.pi
        ref["attention"] += _attention_reference(model, b, data.title_mask[i])
    return ref


def _attention_reference(model, b, title_mask):
    """Eager attention maps of one unpadded sample; the score by plain loops."""
    lm = model.lm
    before = lm.config._attn_implementation
    lm.set_attn_implementation("eager")
    with torch.no_grad():
        soft = model.embed(b.input_ids)  # item slots as soft tokens (None: text only)
        out = decoder(lm)(
            input_ids=b.input_ids if soft is None else None,
            inputs_embeds=soft,
            attention_mask=b.attention_mask,
            position_ids=b.position_ids,
            output_attentions=True,
            use_cache=False,
        )
    lm.set_attn_implementation(before)
    scores = []
    for att in out.attentions:  # (1, heads, T, T)
        per_head = []
        for h in range(att.shape[1]):
            p = att[0, h, -1].tolist()
            n = len(p)
            ent = -sum(x * math.log(x) for x in p if x > 0)
            conc = 1 - ent / math.log(n) if n > 1 else 1.0
            share = sum(x for x, t in zip(p, title_mask, strict=True) if t)
            per_head.append(conc * share)
        scores.append(sum(per_head) / len(per_head))
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize("items", ["text", "ids", "hybrid"])
def test_one_batched_pass_matches_a_per_sample_loop(items):
    """In every ``teacher.items`` mode (item slots enter as soft tokens; the attention share
    counts title tokens, slots or both, as the item mask says)."""
    model, _ = tiny_model(items=items)
    data = tiny_split(n=7, items=items)
    got = calibration_pass(model, data, batch_size=4, w_rating=W_RATING)
    ref = _reference(model, data)
    assert got["n"] == 7
    for key, expected in ref.items():
        torch.testing.assert_close(got["sums"][key], expected, rtol=2e-4, atol=1e-6, msg=key)
    assert got["last_states"].shape == (7, 5, 32)  # input of layers 0..3 and output of layer 3
    # the per-sample rows (H1's interval resamples them): each is that sample's pass alone
    for i in range(7):
        alone = calibration_pass(model, data.subset([i]), batch_size=1, w_rating=W_RATING)
        for key in ROW_KEYS:
            torch.testing.assert_close(
                got["rows"][key][i], alone["sums"][key], rtol=2e-4, atol=1e-6, msg=key
            )
    for key in ROW_KEYS:
        assert got["rows"][key].shape == (7, 4)
        torch.testing.assert_close(got["rows"][key].sum(0), got["sums"][key], rtol=1e-6, atol=1e-9)


def test_fisher_is_positive_and_differs_between_layers():
    model, _ = tiny_model(seed=3)
    got = calibration_pass(model, tiny_split(n=5, seed=2), batch_size=5, w_rating=0.0)
    fisher = got["sums"]["fisher"]
    assert (fisher > 0).all()
    assert fisher.unique().numel() == fisher.numel()


def test_merging_shards_equals_one_pass():
    model, _ = tiny_model()
    data = tiny_split(n=9)
    whole = {
        "calibration": calibration_pass(model, data, 4, W_RATING),
        "train": train_pass(model, data, 4),
        "train_index": torch.arange(9),
    }
    parts = []
    for s in range(3):
        idx = shard_indices(9, s, 3)
        calib = calibration_pass(model, data.subset(idx), 4, W_RATING)
        calib["index"] = torch.tensor(idx)
        parts.append(
            {
                "calibration": calib,
                "train": train_pass(model, data.subset(idx), 4),
                "train_index": torch.tensor(idx),
            }
        )
    merged = merge_shards(parts)
    assert merged["calibration"]["n"] == 9
    # Shards see other batch shapes, so fp32 reductions round differently: allow 64 fp32 ulps
    # of each statistic's scale (seen: <= 1.3e-6 relative on taylor, a signed sum; the
    # attention deficit, once 5e-4 relative in float32, is now ~3e-8).
    rtol = 64 * torch.finfo(torch.float32).eps
    for key, value in whole["calibration"]["sums"].items():
        scale = float(value.abs().max())
        torch.testing.assert_close(
            merged["calibration"]["sums"][key], value, rtol=rtol, atol=rtol * scale, msg=key
        )
    torch.testing.assert_close(
        merged["calibration"]["last_states"],
        whole["calibration"]["last_states"],
        rtol=1e-5,
        atol=1e-6,
    )
    for key, value in whole["train"].items():
        torch.testing.assert_close(merged["train"][key], value, rtol=1e-5, atol=1e-6)
    for key, value in whole["calibration"]["rows"].items():  # back in sample order
        torch.testing.assert_close(merged["calibration"]["rows"][key], value, rtol=1e-5, atol=1e-6)


def test_shard_indices_partition_and_reject_bad_shard():
    got = sorted(i for s in range(4) for i in shard_indices(10, s, 4))
    assert got == list(range(10))
    with pytest.raises(ValueError, match="shard 4"):
        shard_indices(10, 4, 4)


#: bf16 keeps 8 significand bits: unit roundoff 2^-8 (machine eps 2^-7 = 7.8e-3)
BF16_EPS = torch.finfo(torch.bfloat16).eps
#: tolerance per statistic, in bf16 eps, relative to its largest layer value. The statistics
#: accumulate in fp32/fp64 whatever the model dtype, so what is left is the bf16 rounding of the
#: forward and backward themselves (seen on 3 seeds: <= 0.45 eps for fisher, gradient, block
#: influence and angular). taylor is a signed sum that cancels (seen <= 3.9 eps) and the
#: attention deficit measures a distribution's distance from uniform, which bf16 attention
#: weights move by their own rounding (seen <= 8.1 eps).
BF16_TOL = {"fisher": 2, "gradient": 2, "block_influence": 2, "angular": 2, "taylor": 8,
            "attention": 16}  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_teacher_pass_in_bf16_matches_fp32_within_the_dtype_tolerance(seed):
    import copy

    model, _ = tiny_model(seed=seed)
    data = tiny_split(n=9, seed=seed)
    ref = calibration_pass(model, data, 4, W_RATING)
    low = copy.deepcopy(model)
    low.lm.to(torch.bfloat16)  # the backbone in bf16, as teacher.dtype: bf16 loads it
    got = calibration_pass(low, data, 4, W_RATING)
    for key, expected in ref["sums"].items():
        assert got["sums"][key].dtype == torch.float64  # accumulated in fp64, not in bf16
        scale = float(expected.abs().max())
        err = float((got["sums"][key] - expected).abs().max()) / scale
        assert err <= BF16_TOL[key] * BF16_EPS, (key, err / BF16_EPS)
    assert torch.isfinite(got["last_states"]).all()
