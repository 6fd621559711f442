"""The recommender built on an LLM: user tower, item tower, item bias and rating heads.

The user vector is a projection of the last-token state of the history prompt. The item tower
depends on ``teacher.items`` (:mod:`layerkd.models.items`): projected item-text features
(encoded once by the base teacher, :func:`~layerkd.models.items.encode_items`), rows of the
SASRec item table, or their sum; ``score(u, i) = <u, v_i> + b_i``. Two rating heads read
``[u, v, u * v]``: a regression to 1-5 and a 5-way classifier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from layerkd.models.backbone import decoder, load_causal_lm
from layerkd.models.items import TABLE_MODES, check_mode, load_features, uses_table, uses_text
from layerkd.models.text import TokenBatch

HEADS_FILE = "heads.safetensors"
META_FILE = "layerkd.json"


def catalogue_scores(
    u: torch.Tensor, item_vecs: torch.Tensor, item_bias: torch.Tensor
) -> torch.Tensor:
    """``score(u, i) = <u, v_i> + b_i`` of user vectors ``u`` (B, d) for every item: (B, n)."""
    return u @ item_vecs.T + item_bias


class RecHeads(nn.Module):
    """Projections, item bias and rating heads on top of a backbone; in the ID modes of
    ``teacher.items`` (:mod:`layerkd.models.items`) also the item table and the map of a table
    row to the soft input token of an item slot.

    ``table`` (n_items, dim) is the SASRec item table for ``ids`` and ``hybrid``: a parameter
    when ``item_table`` is ``trainable``, a (saved) buffer when ``frozen``, so a frozen table is
    never among the parameters any optimiser sees. Modules are created in the same order for
    every mode (the ID modes' extras last), so a ``text`` head initialises as it always has.
    """

    def __init__(
        self,
        hidden: int,
        item_dim: int,
        n_items: int,
        dim: int,
        *,
        items: str = "text",
        table: torch.Tensor | None = None,
        item_table: str = "frozen",
    ) -> None:
        super().__init__()
        self.mode = check_mode(items)
        if uses_table(self.mode) and (table is None or tuple(table.shape) != (n_items, dim)):
            shape = None if table is None else tuple(table.shape)
            raise ValueError(
                f"teacher.items={items!r} needs an item table of shape ({n_items}, {dim}); "
                f"got {shape}"
            )
        if item_table not in TABLE_MODES:
            raise ValueError(f"teacher.item_table={item_table!r}: expected frozen or trainable")
        self.user_proj = nn.Linear(hidden, dim)
        self.item_proj = nn.Linear(item_dim, dim) if uses_text(self.mode) else None
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.rating_reg = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 1))
        self.rating_cls = nn.Sequential(nn.Linear(3 * dim, dim), nn.GELU(), nn.Linear(dim, 5))
        self.dims: dict[str, Any] = {
            "hidden": hidden, "item_dim": item_dim, "n_items": n_items, "dim": dim,
        }  # fmt: skip
        self.item_in: nn.Linear | None = None
        if uses_table(self.mode):
            assert table is not None
            self.item_in = nn.Linear(dim, hidden)
            rows = table.detach().float().clone()
            if item_table == "trainable":
                self.item_table = nn.Parameter(rows)
            else:
                self.register_buffer("item_table", rows)
            self.dims |= {"items": self.mode, "item_table": item_table}

    def item_vectors(self, features: torch.Tensor) -> torch.Tensor:
        """The item tower (n_items, dim): projected text features, table rows, or their sum."""
        vecs = self.item_proj(features) if self.item_proj is not None else None
        if self.item_in is not None:
            vecs = self.item_table if vecs is None else vecs + self.item_table
        assert vecs is not None
        return vecs

    def soft_tokens(self, index: torch.Tensor) -> torch.Tensor:
        """Input embeddings (..., hidden) of the item slots of items ``index`` (row positions)."""
        if self.item_in is None:
            raise ValueError("item slots in a history, but teacher.items is 'text'")
        return self.item_in(self.item_table[index])

    def scores(self, u: torch.Tensor, cand: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """Scores (B, C) of user vectors ``u`` (B, d) for candidate item indices ``cand`` (B, C).

        Scored against every item, then gathered: the backward of a gather scatters into
        distinct (row, item) cells, so gradients are bitwise reproducible. Indexing
        ``item_vecs[cand]`` instead accumulates the gradient of an item chosen in several rows
        in thread order on CPU, and two identical runs drifted apart in the last bits.
        """
        return self.catalogue(u, item_vecs).gather(1, cand)

    def catalogue(self, u: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """Scores (B, n_items) of user vectors ``u`` against every item."""
        return catalogue_scores(u, item_vecs, self.item_bias)

    def ratings(
        self, u: torch.Tensor, target: torch.Tensor, item_vecs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted rating (B,) on 1-5 and 5-class logits (B, 5) for the target items."""
        v = F.one_hot(target, item_vecs.shape[0]).to(item_vecs.dtype) @ item_vecs  # see scores()
        z = torch.cat([u, v, u * v], dim=-1)
        return 3.0 + 2.0 * torch.tanh(self.rating_reg(z).squeeze(-1)), self.rating_cls(z)


@dataclass
class RecOutput:
    """What a forward pass gives: candidate scores, rating predictions, optional hidden states."""

    scores: torch.Tensor
    rating: torch.Tensor
    rating_logits: torch.Tensor
    user: torch.Tensor
    hidden: tuple[torch.Tensor, ...] | None = None
    target: torch.Tensor | None = None  # (B,) the target items (column 0 of the candidates)
    catalogue: torch.Tensor | None = None  # (B, n_items) scores of every item


class RecModel(nn.Module):
    """A causal LM used as a user tower, plus :class:`RecHeads` and fixed item features."""

    def __init__(self, lm: nn.Module, heads: RecHeads, item_features: torch.Tensor) -> None:
        super().__init__()
        self.lm = lm
        self.heads = heads
        self.register_buffer("item_features", item_features.float(), persistent=False)

    @property
    def items_mode(self) -> str:
        """How items reach this model (``teacher.items``: text, ids or hybrid)."""
        return self.heads.mode

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor | None:
        """Input embeddings of token ids with item slots (negative ids) replaced by their soft
        tokens; ``None`` when there is no slot (the LLM then embeds the ids itself)."""
        slots = input_ids < 0
        if not bool(slots.any()):
            return None
        emb = decoder(self.lm).embed_tokens
        out = emb(input_ids.clamp(min=0))
        soft = self.heads.soft_tokens((-input_ids[slots] - 1).to(self.item_features.device))
        return out.masked_scatter(slots.unsqueeze(-1), soft.to(out.device, out.dtype))

    @property
    def n_layers(self) -> int:
        """Number of decoder layers."""
        return len(decoder(self.lm).layers)

    def user_states(
        self, batch: TokenBatch, *, hidden_states: bool = False, inputs_embeds: Any = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None]:
        """Last-token final state (B, H) and, on request, all hidden states (L+1 of (B, T, H))."""
        emb = decoder(self.lm).embed_tokens.weight
        batch = batch.to(emb.device)
        if int(batch.input_ids.max()) >= emb.shape[0]:
            raise ValueError(
                f"token id {int(batch.input_ids.max())} is outside this model's {emb.shape[0]} "
                "token embeddings: a student with a trimmed vocabulary (student.trim_vocab) "
                "read a text with a token that no prompt of its dataset holds"
            )
        if inputs_embeds is None:
            inputs_embeds = self.embed(batch.input_ids)
        if inputs_embeds is not None:
            inputs_embeds = inputs_embeds.to(emb.device, emb.dtype)
        out = decoder(self.lm)(
            input_ids=None if inputs_embeds is not None else batch.input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
            output_hidden_states=hidden_states,
        )
        last = out.last_hidden_state[:, -1].to(self.item_features.device, torch.float32)
        return last, (out.hidden_states if hidden_states else None)

    def forward(
        self,
        batch: TokenBatch,
        cand: torch.Tensor,
        *,
        hidden_states: bool = False,
        inputs_embeds: Any = None,
    ) -> RecOutput:
        """Score candidates ``cand`` (B, C; column 0 is the target) for a batch of histories."""
        h, hs = self.user_states(batch, hidden_states=hidden_states, inputs_embeds=inputs_embeds)
        cand = cand.to(h.device)
        u = self.heads.user_proj(h)
        item_vecs = self.heads.item_vectors(self.item_features)
        rating, logits = self.heads.ratings(u, cand[:, 0], item_vecs)
        every = self.heads.catalogue(u, item_vecs)
        return RecOutput(every.gather(1, cand), rating, logits, u, hs, cand[:, 0], every)

    @torch.no_grad()
    def score_all(self, u: torch.Tensor) -> torch.Tensor:
        """Scores (B, n_items) of user vectors ``u`` against every item (full ranking)."""
        u = u.to(self.item_features.device)
        return self.heads.catalogue(u, self.heads.item_vectors(self.item_features))


def rating_loss(out: RecOutput, target_rating: torch.Tensor) -> torch.Tensor:
    """Per-sample (MSE + 5-class CE) of the rating heads; 0 where the rating is unknown (NaN)."""
    target_rating = target_rating.to(out.rating.device)
    known = ~torch.isnan(target_rating)
    r = torch.nan_to_num(target_rating, nan=3.0).clamp(1, 5)
    cls = (r.round().long() - 1).clamp(0, 4)
    mse = (out.rating - r) ** 2
    ce = F.cross_entropy(out.rating_logits, cls, reduction="none")
    return torch.where(known, mse + ce, torch.zeros_like(mse))


def task_loss(
    out: RecOutput,
    target_rating: torch.Tensor,
    w_rating: float,
    reduction: str = "mean",
    objective: str = "sampled",
) -> torch.Tensor:
    """Cross-entropy + ``w_rating`` * (MSE + CE) on known ratings. ``objective``: ``sampled``
    = over the sample's candidates (target at 0), ``full`` = over every item of the catalogue.

    With ``reduction='sum'`` the result is the sum of per-sample losses (for per-sample
    gradients, each sample's gradient is then exactly the gradient of its own loss).
    """
    if objective == "full":
        if out.catalogue is None or out.target is None:
            raise ValueError("a full-catalogue loss needs the scores of every item")
        loss = F.cross_entropy(out.catalogue, out.target, reduction="none")
    elif objective == "sampled":
        zeros = torch.zeros(out.scores.shape[0], dtype=torch.long, device=out.scores.device)
        loss = F.cross_entropy(out.scores, zeros, reduction="none")
    else:
        raise ValueError(f"teacher.finetune.loss={objective!r}: expected full or sampled")
    if w_rating > 0:
        loss = loss + w_rating * rating_loss(out, target_rating)
    return loss.sum() if reduction == "sum" else loss.mean()


def save_recmodel(model: RecModel, tok: Any, out_dir: Path, meta: dict[str, Any]) -> None:
    """Save as an HF model directory (AutoModelForCausalLM-loadable) + heads + metadata."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.lm.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    save_file(
        {k: v.contiguous() for k, v in model.heads.state_dict().items()}, out_dir / HEADS_FILE
    )
    (out_dir / META_FILE).write_text(json.dumps({**meta, "dims": model.heads.dims}, indent=2))


def load_recmodel(
    path: Path,
    item_features: torch.Tensor,
    *,
    attn: str | None = None,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> tuple[RecModel, Any, dict[str, Any]]:
    """Load what :func:`save_recmodel` wrote: (model, tokenizer, metadata). The heads and item
    features stay fp32 on ``device``; the backbone is in ``dtype`` (spread by ``device_map``)."""
    from transformers import AutoTokenizer

    meta = json.loads((path / META_FILE).read_text())
    d = meta["dims"]
    state = load_file(path / HEADS_FILE)
    heads = RecHeads(
        d["hidden"], d["item_dim"], d["n_items"], d["dim"],
        items=d.get("items", "text"), table=state.get("item_table"),
        item_table=d.get("item_table", "frozen"),
    )  # fmt: skip
    heads.load_state_dict(state)
    lm = load_causal_lm(path, attn=attn, device=device, dtype=dtype, device_map=device_map)
    tok = AutoTokenizer.from_pretrained(str(path))
    model = RecModel(lm, heads.to(device), item_features.to(device))
    return model, tok, meta


def load_for_scoring(
    model_dir: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    *,
    device: str,
    dtype: str,
    device_map: str | None,
) -> tuple[RecModel, Any, Any, Any, dict[str, Any]]:
    """A saved model (teacher or student) with its item features, plus the items and samples
    frames and the model's metadata: what every step that scores samples starts from."""
    import pandas as pd

    from layerkd.runtime import device_of

    items, frame = pd.read_parquet(item_table), pd.read_parquet(samples)
    model, tok, meta = load_recmodel(
        model_dir,
        load_features(features, items),
        device=device_of(device),
        dtype=dtype,
        device_map=device_map,
    )
    return model, tok, items, frame, meta
