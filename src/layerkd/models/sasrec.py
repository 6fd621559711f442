"""SASRec (Kang & McAuley, ICDM 2018): the classical sequential recommender of the reference
row, and its training task for the one loop (:func:`~layerkd.models.fit.fit`).

A compact implementation in the package rather than a library: RecBole does not install with
our numpy 2 / torch pins and rectools pins numpy<2.

Model: item-id embeddings (index 0 = padding, items 1..n in ``items.parquet`` order, scaled by
sqrt(hidden)) plus learned positional embeddings, ``blocks`` **pre-LN** causal self-attention
blocks (``x + Attn(LN(x))``, ``x + FFN(LN(x))``, a point-wise ReLU FFN of width ``hidden``,
dropout on embeddings, attention weights and both residual branches) and a final LayerNorm.
The output at position t scores item t+1 by a dot product with the (tied) item embeddings.

* Positions count from the user's first real item (``cumsum(mask) - 1``), so neither the side
  nor the amount of padding changes a score, and appending items never changes earlier outputs.
* Attention: a query sees real keys at or before it (causal mask + key-padding mask) and always
  itself, so no softmax row is ever fully masked (a fully masked row is NaN); pad positions are
  zeroed after the embeddings and after every block and are never read.
* Training (:class:`SasrecTask`): full-softmax cross-entropy over all items at every real
  position of each user's training sequence, through :func:`~layerkd.models.fit.fit` like the
  teacher and the students (AdamW, the loop's schedule, seeded batch order, early stopping on
  validation NDCG@5 under ``eval.primary``'s protocol, the best weights kept).
* Candidates are scored by gathering their embeddings (no index accumulation), so CPU runs with
  a fixed thread count are bitwise reproducible given ``seed``.
* Batches drop their all-padding leading columns (:func:`trim`): the scores are the same.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from layerkd.evaluation.full import full_ranks
from layerkd.evaluation.metrics import rank_metrics, ranking_metrics
from layerkd.models.fit import FitParams


@dataclass(frozen=True)
class SasrecParams(FitParams):
    """The ``sasrec`` section of the config (the schema describes each key and its default):
    the loop's settings (:class:`~layerkd.models.fit.FitParams`) and the network's."""

    hidden: int
    blocks: int
    heads: int
    dropout: float
    max_len: int


class Block(nn.Module):
    """One pre-LN block: masked multi-head self-attention, then a point-wise FFN."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"sasrec.hidden={hidden} is not a multiple of sasrec.heads={heads}")
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.out = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.ff = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.heads)
        att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
        mixed = (self.drop(att) @ v).transpose(1, 2).reshape(b, n, d)
        x = x + self.drop(self.out(mixed))
        return x + self.drop(self.ff(self.ln2(x)))


class SASRec(nn.Module):
    """Item sequence (B, L) of indices (0 = padding, either side) -> hidden states (B, L, d)."""

    def __init__(self, n_items: int, p: SasrecParams) -> None:
        super().__init__()
        self.n_items, self.hidden = n_items, p.hidden
        self.item = nn.Embedding(n_items + 1, p.hidden, padding_idx=0)
        self.pos = nn.Embedding(p.max_len, p.hidden)
        self.drop = nn.Dropout(p.dropout)
        self.blocks = nn.ModuleList(Block(p.hidden, p.heads, p.dropout) for _ in range(p.blocks))
        self.norm = nn.LayerNorm(p.hidden)
        # item vectors of norm ~1 after the sqrt(hidden) scale, so the first logits are O(1)
        nn.init.normal_(self.item.weight, std=p.hidden**-0.5)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        real = seqs > 0
        keep = real.unsqueeze(-1).to(self.item.weight.dtype)
        pos = (real.cumsum(1) - 1).clamp(min=0)
        x = self.drop(self.item(seqs) * math.sqrt(self.hidden) + self.pos(pos)) * keep
        n = seqs.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=seqs.device).tril()
        itself = torch.eye(n, dtype=torch.bool, device=seqs.device)
        allowed = ((causal & real[:, None, :]) | itself)[:, None]  # (B, 1, L, L), no empty row
        for block in self.blocks:
            x = block(x, allowed) * keep
        return self.norm(x)

    def user_vectors(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, d): the hidden state at each row's last real item (any padding side)."""
        last = seqs.shape[1] - 1 - (seqs > 0).flip(1).int().argmax(1)
        return self(seqs)[torch.arange(seqs.shape[0]), last]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item 1..n (column j = item j+1) for hidden states (..., d)."""
        return hidden @ self.item.weight[1:].T

    @torch.no_grad()
    def score(self, seqs: torch.Tensor, cands: torch.Tensor, batch: int = 512) -> np.ndarray:
        """(N, C) scores of candidate indices ``cands`` (N, C) after ``seqs`` (N, L)."""
        self.eval()
        out = []
        for i in range(0, len(seqs), batch):
            u = self.user_vectors(trim(seqs[i : i + batch]))
            out.append((self.item(cands[i : i + batch]) * u[:, None, :]).sum(-1))
        scores = torch.cat(out).double().numpy() if out else np.zeros((0, cands.shape[1]))
        if not np.isfinite(scores).all():
            raise ValueError("SASRec produced non-finite scores")
        return scores

    @torch.no_grad()
    def full_ranks(
        self, seqs: torch.Tensor, targets: np.ndarray, seen: list[np.ndarray]
    ) -> np.ndarray:
        """1-based rank of each target index (0-based, ``items.parquet`` order) after ``seqs``
        among every item but the row's ``seen`` ones
        (:func:`~layerkd.evaluation.full.seen_items`)."""
        self.eval()
        u = torch.cat([self.user_vectors(trim(s)) for s in seqs.split(512)]) if len(seqs) else None
        return full_ranks(lambda rows: self.logits(u[rows]).double().numpy(), targets, seen)


def trim(seqs: torch.Tensor, *more: torch.Tensor) -> Any:
    """``seqs`` (and ``more``, aligned with it) without the leading columns that are padding in
    every row: the same scores (positions count from each row's first item), less work."""
    first = min(int((seqs > 0).any(0).int().argmax()), seqs.shape[1] - 1)
    return seqs[:, first:] if not more else (seqs[:, first:], *(m[:, first:] for m in more))


def pad_left(seqs: list[list[int]], max_len: int) -> torch.Tensor:
    """(N, max_len) long tensor: the last ``max_len`` items of each sequence, left-padded with 0."""
    out = torch.zeros(len(seqs), max_len, dtype=torch.long)
    for r, s in enumerate(seqs):
        tail = s[-max_len:]
        if tail:
            out[r, max_len - len(tail) :] = torch.tensor(tail, dtype=torch.long)
    return out


class SasrecTask:
    """SASRec's training task for :func:`~layerkd.models.fit.fit`: next-item cross-entropy over
    every item at every real position of the training sequences; validation NDCG@5 of the
    validation rows, on their candidates or (``full`` given) against the whole catalogue."""

    def __init__(
        self,
        model: SASRec,
        seqs: list[list[int]],
        valid: tuple[torch.Tensor, torch.Tensor],
        max_len: int,
        full: tuple[np.ndarray, list[np.ndarray]] | None = None,
    ) -> None:
        """``seqs``: each user's training item indices; ``valid``: (inputs, candidates with the
        target in column 0); ``full``: (target index, seen indices) of the same rows."""
        data = pad_left([s for s in seqs if len(s) > 1], max_len + 1)
        if not len(data):
            raise ValueError("SASRec: no user has two training items; nothing to learn from")
        # inputs s[:-1] predict s[1:]; -1 marks the targets of padding inputs, ignored by the
        # loss (the last padding input would otherwise "predict" the user's first item)
        self.inputs = data[:, :-1]
        self.targets = (data[:, 1:] - 1).masked_fill(self.inputs == 0, -1)
        self.model, self.valid, self.full = model, valid, full

    def __len__(self) -> int:
        return len(self.inputs)

    def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
        x, y = trim(self.inputs[idx], self.targets[idx])
        logits = self.model.logits(self.model(x)).flatten(0, 1)
        return {"total": F.cross_entropy(logits, y.flatten(), ignore_index=-1)}

    def evaluate(self) -> float:
        if self.full is None:
            return float(ranking_metrics(self.model.score(*self.valid))["ndcg@5"].mean())
        ranks = self.model.full_ranks(self.valid[0], *self.full)
        return float(rank_metrics(ranks)["ndcg@5"].mean())
