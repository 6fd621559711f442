"""Llama-style decoder shapes for the resource plan (:mod:`layerkd.plan`): the sizes that fix
a model's parameters, FLOPs and activation memory, read without loading any weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerkd.config import ConfigError
from layerkd.specs import PACKAGED, TINY


@dataclass(frozen=True)
class Shape:
    """A Llama-style decoder: the sizes that fix its parameters and FLOPs."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    tied: bool

    def linears(self) -> list[tuple[int, int]]:
        """(in, out) of each linear of one layer: q, k, v, o, gate, up, down."""
        h, kv, i = self.hidden, self.kv_heads * (self.hidden // self.heads), self.intermediate
        return [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]

    @property
    def matmul(self) -> int:
        """Weights of one layer used in matmuls (the two norms excluded)."""
        return sum(a * b for a, b in self.linears())

    @property
    def params(self) -> int:
        """All parameters: layers, final norm, embeddings and (untied) LM head."""
        emb = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * (self.matmul + 2 * self.hidden) + self.hidden + emb

    def flops(self, seq: int, kind: str = "fwd") -> float:
        """FLOPs per token: ``fwd`` (2N), ``train`` (6N) or ``lora`` (4N), attention included."""
        w, a = {"fwd": (2, 1), "train": (6, 3), "lora": (4, 3)}[kind]
        return self.layers * (w * self.matmul + a * 4 * seq * self.hidden)

    def saved(self, b: int, seq: int, eager: bool = False) -> float:
        """Bytes saved for the backward per token and layer (``b``: compute dtype bytes)."""
        h, i = self.hidden, self.intermediate
        attn = self.heads * seq * (4 + b) if eager else 4 * self.heads
        return 2 * (4 * h + b * h) + 4 * b * h + 4 * b * i + attn

    def transient(self, b: int) -> float:
        """Bytes per token of a no-grad forward's intermediates (one layer at a time)."""
        return b * (3 * self.intermediate + 4 * self.hidden)


_LLAMA = ("meta-llama/Meta-Llama-3-8B", "meta-llama/Meta-Llama-3-8B-Instruct")
_SMOL = ("HuggingFaceTB/SmolLM2-135M", "HuggingFaceTB/SmolLM2-135M-Instruct", PACKAGED)
KNOWN_SHAPES = dict.fromkeys(_LLAMA, Shape(32, 4096, 14336, 32, 8, 128256, False)) | dict.fromkeys(
    _SMOL, Shape(30, 576, 1536, 9, 3, 49152, True))  # fmt: skip


def model_shape(teacher: dict[str, Any]) -> Shape:
    """The teacher's shape: ``teacher.tiny``, a local ``config.json`` or :data:`KNOWN_SHAPES`."""
    model, cfg = teacher["model"], Path(teacher["model"]) / "config.json"
    if model == TINY:  # the word vocabulary depends on the data: 1000 assumed
        t = teacher["tiny"]
        return Shape(t["num_layers"], t["hidden_size"], t["intermediate_size"], t["num_heads"],
                     t.get("num_kv_heads") or t["num_heads"], 1000, True)  # fmt: skip
    if cfg.is_file():
        c = json.loads(cfg.read_text())
        kv = c.get("num_key_value_heads") or c["num_attention_heads"]
        return Shape(c["num_hidden_layers"], c["hidden_size"], c["intermediate_size"],
                     c["num_attention_heads"], kv, c["vocab_size"],
                     bool(c.get("tie_word_embeddings", False)))  # fmt: skip
    if model in KNOWN_SHAPES:
        return KNOWN_SHAPES[model]
    raise ConfigError(
        f"teacher.model={model!r} is neither a local model directory with config.json nor in "
        f"the built-in shape table {sorted(KNOWN_SHAPES)} (nothing is downloaded)"
    )
