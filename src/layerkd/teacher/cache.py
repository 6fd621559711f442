"""The teacher pass: one forward+backward over the calibration samples collects what every
gradient- and state-based importance method needs, and one forward over the training samples
records the teacher outputs that offline distillation reads.

Per-sample gradients without a per-sample loop: the batch loss is the *sum* of per-sample
losses, so the gradient that reaches a module's output for sample ``i`` is exactly
``∂ℓ_i/∂out_i``. For a linear map ``y_t = W x_t`` the per-sample weight gradient is
``G_iᵀ X_i`` and its squared Frobenius norm is ``Σ_{t,s} (x_t·x_s)(g_t·g_s)``, i.e.
``sum((X Xᵀ) ⊙ (G Gᵀ))`` - computed from the activations and output gradients the hooks see,
never materialising a per-sample gradient (the "Gram" trick; the direct ``einsum`` is used
when it is cheaper). RMSNorm weights get ``Σ_t g_t ⊙ x̂_t``. Any other parameter kind raises.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from layerkd.models.backbone import LayerOutputs, decoder
from layerkd.models.recmodel import RecModel, task_loss
from layerkd.models.samples import SplitData
from layerkd.models.text import batches

STAT_KEYS = ("fisher", "gradient", "taylor", "block_influence", "angular", "attention")
# the statistics whose per-sample values are kept (``rows``: the H1 interval resamples them);
# taylor's is the batch gradient's, which sums its samples, so it has none
ROW_KEYS = ("fisher", "gradient", "block_influence", "angular", "attention")


class LastTokenAttention:
    """Hooks on every layer's ``self_attn`` keeping the last query's attention weights
    (B, heads, T); needs eager attention (other kernels return no weights)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        self.mods = [layer.self_attn for layer in layers]
        self.weights: list[torch.Tensor | None] = [None] * len(self.mods)
        self._handles: list[Any] = []

    def __enter__(self) -> LastTokenAttention:
        for i, mod in enumerate(self.mods):

            def hook(_m: nn.Module, _a: Any, out: Any, i: int = i) -> None:
                w = out[1] if isinstance(out, tuple) and len(out) > 1 else None
                if w is None:
                    raise RuntimeError("attention weights unavailable: eager attention needed")
                self.weights[i] = w[:, :, -1, :].detach().float()

            self._handles.append(mod.register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def attention_score(
    weights: torch.Tensor, mask: torch.Tensor, titles: torch.Tensor
) -> torch.Tensor:
    """Per sample: mean over heads of (1 − normalised entropy) × share on title tokens.

    ``weights`` (B, heads, T) is the last query's attention, ``mask`` (B, T) the real tokens,
    ``titles`` (B, T) the item-title tokens. With one real token the entropy term is 0.

    The concentration is computed as the deficit ``(log n − H) / log n`` in float64: near a
    uniform distribution ``H`` is close to ``log n``, and ``1 − H / log n`` in float32 would
    turn the weights' rounding noise into a relative error of ~1e-3 of the statistic (the
    deficit itself has zero slope at uniform, so it barely moves when the weights do).
    """
    p = weights.double() * mask[:, None, :].double()
    p = p / p.sum(-1, keepdim=True).clamp_min(1e-300)
    n = mask.sum(-1).double()
    log_n = torch.log(n)[:, None]
    # log n − H = Σ p log(n p): the KL divergence from the uniform distribution over n tokens
    deficit = (p * torch.log((p * n[:, None, None]).clamp_min(1e-300))).sum(-1)
    concentration = torch.where(
        n[:, None] > 1, deficit / log_n.clamp_min(1e-300), torch.ones_like(deficit)
    )
    share = (p * titles[:, None, :].double()).sum(-1)
    return (concentration * share).mean(-1)


def _is_rmsnorm(mod: nn.Module) -> bool:
    return type(mod).__name__.endswith("RMSNorm") and isinstance(
        getattr(mod, "weight", None), nn.Parameter
    )


class PerSampleSqNorm:
    """Hooks that add each sample's squared gradient norm, per decoder layer, into ``acc``."""

    def __init__(self, layers: list[nn.Module]) -> None:
        self.layers = layers
        self.acc: torch.Tensor | None = None  # (B, L), filled during backward
        self._handles: list[Any] = []

    def _linear_hook(self, layer_idx: int) -> Any:
        def fwd(mod: nn.Linear, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = args[0].detach()

            def bwd(g: torch.Tensor) -> None:
                # products and sums of per-sample statistics in fp32 whatever the model dtype
                # (a no-op for an fp32 model)
                g = g.detach().float()
                x3, g3 = (
                    x.float().reshape(x.shape[0], -1, x.shape[-1]),
                    g.reshape(g.shape[0], -1, g.shape[-1]),
                )
                t, din, dout = x3.shape[1], x3.shape[2], g3.shape[2]
                if t * (din + dout) < din * dout:
                    sq = ((x3 @ x3.transpose(1, 2)) * (g3 @ g3.transpose(1, 2))).sum((1, 2))
                else:
                    sq = torch.einsum("bti,bto->bio", x3, g3).pow(2).sum((1, 2))
                if mod.bias is not None:
                    sq = sq + g3.sum(1).pow(2).sum(-1)
                self._add(layer_idx, sq)

            if out.requires_grad:
                out.register_hook(bwd)

        return fwd

    def _norm_hook(self, layer_idx: int) -> Any:
        def fwd(mod: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            x = args[0].detach().float()
            eps = getattr(mod, "variance_epsilon", getattr(mod, "eps", 1e-6))
            xhat = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)

            def bwd(g: torch.Tensor) -> None:
                per = (g.detach().float() * xhat).reshape(x.shape[0], -1, x.shape[-1]).sum(1)
                self._add(layer_idx, per.pow(2).sum(-1))

            if out.requires_grad:
                out.register_hook(bwd)

        return fwd

    def _add(self, layer_idx: int, sq: torch.Tensor) -> None:
        assert self.acc is not None
        self.acc[:, layer_idx] += sq.float().to(self.acc.device)

    def __enter__(self) -> PerSampleSqNorm:
        for li, layer in enumerate(self.layers):
            covered: set[int] = set()
            for mod in layer.modules():
                if isinstance(mod, nn.Linear):
                    self._handles.append(mod.register_forward_hook(self._linear_hook(li)))
                elif _is_rmsnorm(mod):
                    self._handles.append(mod.register_forward_hook(self._norm_hook(li)))
                else:
                    continue
                covered.update(id(p) for p in mod.parameters(recurse=False))
            missing = [n for n, p in layer.named_parameters() if id(p) not in covered]
            if missing:
                raise NotImplementedError(
                    f"layer {li}: no per-sample gradient rule for parameters {missing}"
                )
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1).clamp(-1.0, 1.0)


def calibration_pass(
    model: RecModel, data: SplitData, batch_size: int, w_rating: float
) -> dict[str, Any]:
    """Forward+backward over ``data`` once; per-layer *sums* over samples for every method.

    Returns sums (divide by ``n`` for means) of: per-sample Fisher trace, ``‖∂ℓ_i/∂h_l‖₂``,
    ``Σ_p p·∂ℓ_i/∂p`` (taylor, signed), block influence, angular distance at the last token;
    ``rows`` (n, L) per sample for :data:`ROW_KEYS`; and ``last_states`` (n, L+1, H): the
    last-token state entering each layer and leaving the last one (for the ``block`` strategy),
    with ``index`` the sample positions in ``data``.
    """
    lm = model.lm
    layers = list(decoder(lm).layers)
    n_layers = len(layers)
    sums = {k: torch.zeros(n_layers, dtype=torch.float64) for k in STAT_KEYS}
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ROW_KEYS}
    last_states = []
    attn_before = lm.config._attn_implementation
    lm.set_attn_implementation("eager")  # attention maps need eager; only for this pass
    model.eval()
    for prm in model.parameters():
        prm.requires_grad_(True)
    for rng in tqdm(batches(len(data), batch_size), desc="teacher pass", unit="batch"):
        b, cand, rating = data.batch(rng)
        titles = data.titles(rng) if data.title_mask is not None else None
        model.zero_grad(set_to_none=True)
        with (
            PerSampleSqNorm(layers) as sqn,
            LayerOutputs(lm, keep_grad=True) as rec,
            LastTokenAttention(layers) as att,
        ):
            sqn.acc = torch.zeros(len(rng), n_layers)  # CPU: hooks on any device add here
            out = model(b, cand)
            outs: list[Any] = list(rec.outputs)
            ins: list[Any] = list(rec.inputs)
            for o in outs:
                o.retain_grad()
            loss = task_loss(out, rating, w_rating, reduction="sum")
            loss.backward()
        sums["fisher"] += sqn.acc.sum(0).double()
        mask = b.attention_mask.bool()
        per = {
            k: sqn.acc.double() if k == "fisher" else torch.zeros(len(rng), n_layers).double()
            for k in ROW_KEYS
        }  # fisher from the hooks; the others are filled layer by layer below
        with torch.no_grad():
            for li in range(n_layers):
                g = outs[li].grad
                norms = g.float().pow(2).sum((1, 2)).sqrt()
                per["gradient"][:, li] = norms.double().cpu()
                sums["gradient"][li] += float(norms.sum())
                taylor = sum(
                    (p.detach().float() * p.grad.float()).sum()
                    for p in layers[li].parameters()
                    if p.grad is not None
                )
                sums["taylor"][li] += float(taylor)
                cos = _cos(ins[li], outs[li])
                m = mask.to(cos.device)
                bi = ((1 - cos) * m).sum(1) / m.sum(1)
                sums["block_influence"][li] += float(bi.sum())
                ang = torch.arccos(cos[:, -1]) / math.pi
                sums["angular"][li] += float(ang.sum())
                per["block_influence"][:, li] = bi.double().cpu()
                per["angular"][:, li] = ang.double().cpu()
                if titles is not None:
                    w = att.weights[li]
                    a = attention_score(w, mask.to(w.device), titles.to(w.device))
                    sums["attention"][li] += float(a.sum())
                    per["attention"][:, li] = a.double().cpu()
            for k in ROW_KEYS:
                rows[k].append(per[k])
            last = [x[:, -1].detach().float().cpu() for x in ins]
            last.append(outs[-1][:, -1].detach().float().cpu())
            last_states.append(torch.stack(last, dim=1))
    model.zero_grad(set_to_none=True)
    lm.set_attn_implementation(attn_before)
    return {
        "n": len(data),
        "sums": sums,
        "rows": {k: torch.cat(v) for k, v in rows.items()},
        "last_states": torch.cat(last_states),
        "index": torch.arange(len(data)),
    }


@torch.no_grad()
def iter_train_outputs(
    model: RecModel, data: SplitData, batch_size: int, *, hidden: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Teacher outputs on the training samples, one batch at a time: candidate scores (B, C)
    and the user vector (B, d) in fp32 and, with ``hidden``, the last-token output of every
    layer (B, L, H) in the teacher's dtype; the student never runs the teacher."""
    model.eval()
    for rng in tqdm(batches(len(data), batch_size), desc="teacher outputs", unit="batch"):
        b, cand, _ = data.batch(rng)
        with LayerOutputs(model.lm) if hidden else contextlib.nullcontext() as rec:
            out = model(b, cand)
        got = {"scores": out.scores.float().cpu(), "user": out.user.float().cpu()}
        if hidden:
            last = [o[:, -1].cpu() for o in rec.outputs if o is not None]
            got["hidden"] = torch.stack(last, dim=1)
        yield got


def train_pass(
    model: RecModel, data: SplitData, batch_size: int, *, hidden: bool = True
) -> dict[str, torch.Tensor]:
    """:func:`iter_train_outputs` over every training sample at once (small data, tests)."""
    parts = list(iter_train_outputs(model, data, batch_size, hidden=hidden))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def shard_indices(n: int, shard: int, n_shards: int) -> list[int]:
    """The sample positions that shard ``shard`` of ``n_shards`` handles (``i % n_shards``)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for teacher.shards={n_shards}")
    return list(range(shard, n, n_shards))


def merge_calibration(calib: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the calibration statistics of shards: sums add up, per-sample rows are put back
    in sample order."""
    if not calib:
        raise ValueError("no cache shards to merge")
    index = torch.cat([c["index"] for c in calib])
    order = torch.argsort(index)
    return {
        "n": sum(int(c["n"]) for c in calib),
        "sums": {k: sum(c["sums"][k] for c in calib) for k in calib[0]["sums"]},
        "rows": {k: torch.cat([c["rows"][k] for c in calib])[order] for k in calib[0]["rows"]},
        "last_states": torch.cat([c["last_states"] for c in calib])[order],
        "index": index[order],
    }


def merge_shards(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge shard results: sums add up, per-sample rows are put back in sample order."""
    if not parts:
        raise ValueError("no cache shards to merge")
    train_index = torch.cat([p["train_index"] for p in parts])
    torder = torch.argsort(train_index)
    merged = {
        "calibration": merge_calibration([p["calibration"] for p in parts]),
        "train_index": train_index[torder],
    }
    for key in parts[0]["train"]:
        merged.setdefault("train", {})[key] = torch.cat([p["train"][key] for p in parts])[torder]
    return merged


def block_distances(last_states: Any) -> np.ndarray:
    """Mean angular distance (arccos cos / π) at the last token between every pair of hidden
    states ``h_i``, ``h_j`` (``h_0`` = input of layer 0 ... ``h_L`` = output of the last layer):
    an (L+1, L+1) matrix for the ``block`` strategy."""
    x = torch.nn.functional.normalize(last_states.double(), dim=-1)  # (n, L+1, H)
    cos = torch.einsum("nih,njh->nij", x, x).clamp(-1, 1)
    return (torch.arccos(cos) / math.pi).mean(0).numpy()
