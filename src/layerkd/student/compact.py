"""Compact students: a narrower decoder whose layer ``j`` stands for the ``j``-th kept teacher
layer, initialised at random or from the teacher by a fixed, documented projection.

Teacher initialisation ("project and select"), for a teacher of hidden size ``H`` and a
student of hidden size ``h <= H`` with the same head size:

* ``P`` (h × H, orthonormal rows) spans the top-``h`` principal directions of the teacher's
  residual stream: the eigenvectors of ``Σ_g mean_{x∈g} x̂ x̂ᵀ`` (uncentred, unit-normalised
  vectors, each group weighted equally) over the groups "token embeddings" and "last-token
  output of kept layer l" (from the teacher cache). The student residual stream is ``P x``.
* Every RMSNorm gain ``g`` is folded into the linear map that reads the normalised state, and
  the student's gain becomes the constant ``sqrt(H / h)`` (which corrects ``rms(P x)`` for the
  smaller width): a reading map ``W`` becomes ``W diag(g) Pᵀ``, a writing map ``W`` becomes
  ``P W``, the embeddings ``E`` become ``E Pᵀ``, the user projection ``W_u diag(g_final) Pᵀ``.
* Attention keeps the ``n_heads`` heads with the largest ``‖W_o[:, head]‖_F`` (teacher order);
  key/value heads are expanded to one per query head, and each student key/value head is the
  mean of those of the query heads in its group. The MLP keeps the ``intermediate_size``
  neurons with the largest ``‖W_down[:, n]‖ · ‖W_up[n, :]‖``.

With ``h = H``, all heads and all neurons this reproduces the keep student exactly (``P`` is
a rotation and RMSNorm commutes with rotations), which the tests check. The learned
alignment projections (student → teacher hidden, one per mapped layer, used by the hidden
term of distillation) start as ``Pᵀ``; a random student gets randomly initialised ones.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from layerkd.models.backbone import decoder
from layerkd.models.recmodel import RecHeads, RecModel

ALIGN_FILE = "align.safetensors"
INITS = ("teacher", "random")


@dataclass(frozen=True)
class CompactSpec:
    """Shape and initialisation of a compact student (``student.compact`` in the config)."""

    hidden_size: int = 512
    intermediate_size: int = 1024
    num_heads: int = 8
    num_kv_heads: int | None = None
    init: str = "teacher"

    @property
    def kv_heads(self) -> int:
        """Key/value heads (``num_heads`` when not set: plain multi-head attention)."""
        return self.num_kv_heads or self.num_heads


def compact_config(teacher_cfg: Any, spec: CompactSpec, n_layers: int, keep: list[int]) -> Any:
    """The teacher's HF config with the student's width, heads and ``n_layers`` layers."""
    if spec.hidden_size % spec.num_heads:
        raise ValueError(
            f"student.compact: hidden_size {spec.hidden_size} is not a multiple of "
            f"num_heads {spec.num_heads}"
        )
    if spec.num_heads % spec.kv_heads:
        raise ValueError(
            f"student.compact: num_heads {spec.num_heads} is not a multiple of "
            f"num_kv_heads {spec.kv_heads}"
        )
    cfg = copy.deepcopy(teacher_cfg)
    cfg.hidden_size = spec.hidden_size
    cfg.intermediate_size = spec.intermediate_size
    cfg.num_attention_heads = spec.num_heads
    cfg.num_key_value_heads = spec.kv_heads
    cfg.head_dim = spec.hidden_size // spec.num_heads
    cfg.num_hidden_layers = n_layers
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[i] for i in keep]
    return cfg


def residual_basis(groups: list[torch.Tensor], dim: int) -> torch.Tensor:
    """``P`` (dim × H): top eigenvectors of the equally weighted second moments of the
    unit-normalised rows of each group (each a (n_i, H) matrix), largest first."""
    width = groups[0].shape[-1]
    if dim > width:
        raise ValueError(f"student.compact.hidden_size {dim} exceeds the teacher's {width}")
    moment = torch.zeros(width, width, dtype=torch.float64)
    for x in groups:
        x = x.reshape(-1, width).double()
        x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        moment += x.T @ x / x.shape[0]
    _, vecs = torch.linalg.eigh(moment)
    return vecs[:, -dim:].flip(-1).T.float().contiguous()


def _top(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest scores, in ascending index order."""
    return torch.topk(scores, n).indices.sort().values


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim)[None]).reshape(-1)


def _project_layer(
    t: dict[str, torch.Tensor], cfg_t: Any, spec: CompactSpec, proj: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Student tensors of one layer from the teacher layer's state dict ``t``."""
    hd = int(getattr(cfg_t, "head_dim", None) or cfg_t.hidden_size // cfg_t.num_attention_heads)
    if spec.hidden_size // spec.num_heads != hd:
        raise ValueError(
            f"student.compact.init=teacher needs the teacher's head size {hd}: "
            f"hidden_size / num_heads = {spec.hidden_size // spec.num_heads}"
        )
    n_t, kv_t = int(cfg_t.num_attention_heads), int(cfg_t.num_key_value_heads)
    if spec.num_heads > n_t or spec.intermediate_size > int(cfg_t.intermediate_size):
        raise ValueError("student.compact: more heads or MLP neurons than the teacher has")
    scale = math.sqrt(proj.shape[1] / proj.shape[0])
    read1 = t["input_layernorm.weight"][:, None] * proj.T  # diag(g) Pᵀ: (H, h)
    read2 = t["post_attention_layernorm.weight"][:, None] * proj.T
    o_w = t["self_attn.o_proj.weight"]
    heads = _top(o_w.reshape(o_w.shape[0], n_t, hd).pow(2).sum((0, 2)), spec.num_heads)
    rows = _head_rows(heads, hd)
    group = (heads // (n_t // kv_t)).reshape(spec.kv_heads, -1)  # teacher kv head per q head

    def kv(w: torch.Tensor) -> torch.Tensor:  # (kv_t*hd, ...) -> (kv_s*hd, ...) group means
        w = w.reshape(kv_t, hd, *w.shape[1:])
        return w[group].mean(1).reshape(spec.kv_heads * hd, *w.shape[2:])

    out = {
        "input_layernorm.weight": torch.full((proj.shape[0],), scale),
        "post_attention_layernorm.weight": torch.full((proj.shape[0],), scale),
        "self_attn.q_proj.weight": t["self_attn.q_proj.weight"][rows] @ read1,
        "self_attn.k_proj.weight": kv(t["self_attn.k_proj.weight"]) @ read1,
        "self_attn.v_proj.weight": kv(t["self_attn.v_proj.weight"]) @ read1,
        "self_attn.o_proj.weight": proj @ o_w[:, rows],
    }
    for name in ("q", "k", "v"):
        bias = t.get(f"self_attn.{name}_proj.bias")
        if bias is not None:
            out[f"self_attn.{name}_proj.bias"] = bias[rows] if name == "q" else kv(bias)
    if t.get("self_attn.o_proj.bias") is not None:
        out["self_attn.o_proj.bias"] = proj @ t["self_attn.o_proj.bias"]
    up, down = t["mlp.up_proj.weight"], t["mlp.down_proj.weight"]
    neurons = _top(down.norm(dim=0) * up.norm(dim=1), spec.intermediate_size)
    out["mlp.gate_proj.weight"] = t["mlp.gate_proj.weight"][neurons] @ read2
    out["mlp.up_proj.weight"] = up[neurons] @ read2
    out["mlp.down_proj.weight"] = proj @ down[:, neurons]
    for name in ("self_attn.q_norm.weight", "self_attn.k_norm.weight"):  # per-head norms
        if name in t:
            out[name] = t[name]
    return out


@torch.no_grad()
def project_teacher(
    teacher: RecModel, keep: list[int], spec: CompactSpec, lm: nn.Module, proj: torch.Tensor
) -> RecHeads:
    """Fill the compact ``lm`` from the teacher's layers ``keep`` through ``proj``; return the
    student's heads (user projection folded, item tower and rating heads copied)."""
    t_lm, cfg_t = teacher.lm, teacher.lm.config
    t_layers = decoder(t_lm).layers
    g_final = decoder(t_lm).norm.weight
    scale = math.sqrt(proj.shape[1] / proj.shape[0])
    new: dict[str, torch.Tensor] = {}
    for j, layer in enumerate(keep):
        t_sd = {k: v.float() for k, v in t_layers[layer].state_dict().items()}
        for k, v in _project_layer(t_sd, cfg_t, spec, proj).items():
            new[f"layers.{j}.{k}"] = v
    new["embed_tokens.weight"] = decoder(t_lm).embed_tokens.weight @ proj.T
    new["norm.weight"] = torch.full((proj.shape[0],), scale)
    inner = decoder(lm)
    expected = {k for k in inner.state_dict() if "rotary" not in k}
    if set(new) != expected:
        raise NotImplementedError(
            f"compact projection: no rule for {sorted(expected - set(new))[:5]} "
            f"(model type {cfg_t.model_type})"
        )
    inner.load_state_dict(new, strict=False)
    t_head = t_lm.get_output_embeddings()
    s_head = lm.get_output_embeddings()
    if s_head is not None and s_head.weight is not inner.embed_tokens.weight:
        s_head.weight.copy_((t_head.weight * g_final) @ proj.T)
    heads = copy.deepcopy(teacher.heads)
    user = nn.Linear(proj.shape[0], heads.user_proj.out_features)
    user.weight.copy_((heads.user_proj.weight * g_final) @ proj.T)
    user.bias.copy_(heads.user_proj.bias)
    heads.user_proj = user
    heads.dims = {**heads.dims, "hidden": proj.shape[0]}
    if heads.item_in is not None:  # an item slot's soft token, seen through the same basis
        soft = nn.Linear(heads.item_in.in_features, proj.shape[0])
        soft.weight.copy_(proj @ heads.item_in.weight)
        soft.bias.copy_(proj @ heads.item_in.bias)
        heads.item_in = soft
    return heads


def alignment(n_layers: int, student_hidden: int, teacher_hidden: int) -> nn.ModuleList:
    """One learned map (student hidden → teacher hidden, no bias) per mapped layer."""
    return nn.ModuleList(
        nn.Linear(student_hidden, teacher_hidden, bias=False) for _ in range(n_layers)
    )


def build_compact(
    teacher: RecModel,
    keep: list[int],
    spec: CompactSpec,
    states: torch.Tensor | None,
    seed: int,
) -> tuple[RecModel, nn.ModuleList]:
    """A compact student for teacher layers ``keep`` and its alignment projections.

    ``states`` (N, len(keep), H) are the teacher's cached last-token outputs of the kept
    layers (needed by ``init='teacher'`` to find ``P``).
    """
    from transformers import AutoModelForCausalLM

    if spec.init not in INITS:
        raise ValueError(f"student.compact.init {spec.init!r} is not one of {INITS}")
    cfg = compact_config(teacher.lm.config, spec, len(keep), keep)
    torch.manual_seed(seed)
    lm = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    hidden_t = int(teacher.lm.config.hidden_size)
    align = alignment(len(keep), spec.hidden_size, hidden_t)
    if spec.init == "random":
        heads = copy.deepcopy(teacher.heads)
        heads.user_proj = nn.Linear(spec.hidden_size, heads.user_proj.out_features)
        heads.dims = {**heads.dims, "hidden": spec.hidden_size}
        if heads.item_in is not None:
            heads.item_in = nn.Linear(heads.item_in.in_features, spec.hidden_size)
    else:
        if states is None:
            raise ValueError("student.compact.init=teacher needs the teacher's cached states")
        emb = decoder(teacher.lm).embed_tokens.weight.detach()
        proj = residual_basis([emb, *states.unbind(1)], spec.hidden_size)
        heads = project_teacher(teacher, keep, spec, lm, proj)
        with torch.no_grad():
            for lin in align:
                lin.weight.copy_(proj.T)
    return RecModel(lm, heads, teacher.item_features).eval(), align


def save_alignment(align: nn.ModuleList, out_dir: Path) -> None:
    """Write the alignment projections next to a saved student."""
    save_file({k: v.contiguous() for k, v in align.state_dict().items()}, out_dir / ALIGN_FILE)


def load_alignment(model_dir: Path, teacher_hidden: int) -> nn.ModuleList | None:
    """The alignment projections saved with a student, or ``None`` when it has none."""
    path = model_dir / ALIGN_FILE
    if not path.is_file():
        return None
    sd = load_file(path)
    n = len(sd)
    student_hidden = int(sd["0.weight"].shape[1])
    align = alignment(n, student_hidden, teacher_hidden)
    align.load_state_dict(sd)
    return align
