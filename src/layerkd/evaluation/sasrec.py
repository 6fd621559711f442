"""SASRec (Kang & McAuley, ICDM 2018): a classical sequential recommender as a reference row,
trained and scored on the same splits and test candidates as every LLM model.

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
* Training: for each user the chronological items of
  :func:`~layerkd.evaluation.reference.training_interactions` (interactions minus every
  valid/test target), its last ``max_len + 1`` items giving inputs ``s[:-1]`` and targets
  ``s[1:]``; full-softmax cross-entropy over all items at every real position; AdamW;
  early stopping on validation NDCG@5 (``epochs`` is a ceiling), the best epoch's weights kept.
* Validation input: the training sequence; test input: the training sequence + the valid
  target (both their last ``max_len`` items). Candidates are scored by gathering their
  embeddings (no index accumulation), so CPU runs with a fixed thread count are bitwise
  reproducible given ``seed``; with ``full`` in ``eval.protocol`` the target is also ranked
  against every item but the user's earlier ones, as for every other model.
* Batches drop their all-padding leading columns (:func:`trim`): the scores are the same.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from layerkd.evaluation.full import full_ranks, full_record, seen_items
from layerkd.evaluation.metrics import ranking_metrics
from layerkd.evaluation.reference import (
    candidates_digest,
    eval_record,
    test_rows,
    training_interactions,
)
from layerkd.io import save_torch, write_json
from layerkd.models.samples import half_rows
from layerkd.records import Record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SasrecParams:
    """The ``sasrec`` section of the config (the schema describes each key and its default)."""

    hidden: int
    blocks: int
    heads: int
    dropout: float
    max_len: int
    epochs: int
    patience: int
    lr: float
    weight_decay: float
    batch_size: int
    seed: int


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


def user_sequences(
    samples: pd.DataFrame, interactions: pd.DataFrame, index: dict[str, int]
) -> dict[str, list[int]]:
    """Each user's chronological training items as indices (valid/test targets excluded); ties
    in time keep the order of ``interactions`` (prepare's (timestamp, item_id) tie-break)."""
    train = training_interactions(samples, interactions)
    train = train.assign(_u=train["user_id"].astype(str)).sort_values(
        ["_u", "timestamp"], kind="stable"
    )
    out: dict[str, list[int]] = {}
    for user, items in train.groupby("_u", sort=False)["item_id"]:
        out[str(user)] = [_idx(index, i) for i in items]
    return out


def _idx(index: dict[str, int], item: Any) -> int:
    try:
        return index[str(item)]
    except KeyError:
        raise ValueError(f"item {item!r} is not in items.parquet") from None


def split_inputs(
    frame: pd.DataFrame,
    split: str,
    seqs: dict[str, list[int]],
    index: dict[str, int],
    max_len: int,
    extra: dict[str, int] | None = None,
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """(user ids, inputs (N, max_len), candidate indices (N, C), target in column 0) of the rows
    of ``split``; ``extra`` appends one item per user (the valid target for the test input)."""
    rows = frame[frame["split"] == split]
    users = rows["user_id"].astype(str).tolist()
    hist = [seqs.get(u, []) + ([extra[u]] if extra and u in extra else []) for u in users]
    cands = [[_idx(index, c) for c in cs] for cs in rows["candidates"]]
    cand = torch.tensor(cands, dtype=torch.long).reshape(len(users), -1)
    return users, pad_left(hist, max_len), cand


def fit(
    model: SASRec,
    seqs: list[list[int]],
    valid: tuple[torch.Tensor, torch.Tensor],
    p: SasrecParams,
) -> dict[str, Any]:
    """Train ``model`` in place (the best validation epoch's weights restored); the log summary."""
    data = pad_left([s for s in seqs if len(s) > 1], p.max_len + 1)
    inputs, targets = data[:, :-1], data[:, 1:] - 1  # -1: padding, ignored by the loss
    if not len(inputs):
        raise ValueError("SASRec: no user has two training items; nothing to learn from")
    opt = torch.optim.AdamW(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    gen = torch.Generator().manual_seed(p.seed)
    best, best_epoch, bad, best_state, history = -1.0, 0, 0, None, []
    bar = tqdm(range(1, p.epochs + 1), desc="sasrec", unit="epoch")
    for epoch in bar:
        model.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(inputs), generator=gen).split(p.batch_size):
            x, y = trim(inputs[idx], targets[idx])
            loss = F.cross_entropy(
                model.logits(model(x)).flatten(0, 1), y.flatten(), ignore_index=-1
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
        if not math.isfinite(total):
            raise FloatingPointError(f"SASRec: non-finite training loss at epoch {epoch}")
        ndcg = float(ranking_metrics(model.score(*valid))["ndcg@5"].mean())
        history.append({"epoch": epoch, "loss": total / count, "valid_ndcg@5": ndcg})
        bar.set_postfix(loss=f"{total / count:.4f}", valid_ndcg5=f"{ndcg:.4f}")
        log.info("epoch %d: loss %.4f, valid NDCG@5 %.4f", epoch, total / count, ndcg)
        if ndcg > best:
            best, best_epoch, bad = ndcg, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= p.patience:
                log.info("early stop after epoch %d (best epoch %d)", epoch, best_epoch)
                break
    bar.close()
    model.load_state_dict(best_state)
    return {
        "best_epoch": best_epoch,
        "best_valid_ndcg@5": best,
        "epochs_run": len(history),
        "stopped_early": len(history) < p.epochs,
        "history": history,
    }


def train_and_score(
    full: pd.DataFrame,
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    frame: pd.DataFrame,
    p: SasrecParams,
) -> tuple[list[str], np.ndarray, SASRec, dict[str, Any]]:
    """Train on ``full`` (every split) and score the test rows of ``frame``: (test user ids,
    (N, C) scores with the target in column 0, the model, the training summary with the test
    inputs under ``test_inputs``)."""
    index = {str(item): i + 1 for i, item in enumerate(items["item_id"])}
    seqs = user_sequences(full, interactions, index)
    # early stopping reads the select half of the validation users, as every model's does
    valid = split_inputs(half_rows(full, "select"), "valid", seqs, index, p.max_len)
    vt = full[full["split"] == "valid"]
    after = {str(u): _idx(index, t) for u, t in zip(vt["user_id"], vt["target"], strict=True)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        model = SASRec(len(index), p)
        summary = fit(model, list(seqs.values()), valid[1:], p)
    users, inputs, cands = split_inputs(frame, "test", seqs, index, p.max_len, after)
    return users, model.score(inputs, cands), model, summary | {"test_inputs": inputs}


def evaluate_sasrec(
    *,
    samples: Path,
    interactions: Path,
    item_table: Path,
    metrics: Path,
    sasrec: dict[str, Any],
    evaluation: dict[str, Any],
    table: Path | None = None,
) -> Record:
    """``evaluate_sasrec``: train SASRec (``sasrec`` section) and write ``eval/sasrec.json`` on
    the test users and candidates of every model (``evaluation`` is the ``eval`` section); with
    ``full`` in its ``protocol`` also on the whole catalogue (the user's earlier items
    excluded), as every other model. ``table`` receives the learned item table (n_items,
    hidden) in ``items.parquet`` order, which the ID modes of ``teacher.items`` read."""
    p = SasrecParams(**sasrec)
    bootstrap, seed = evaluation["bootstrap"], evaluation["seed"]
    full = pd.read_parquet(samples)
    frame = test_rows(full, evaluation["max_users"], seed)
    start = time.perf_counter()
    seen_table, items = pd.read_parquet(interactions), pd.read_parquet(item_table)
    users, scores, model, summary = train_and_score(full, seen_table, items, frame, p)
    seconds = time.perf_counter() - start
    test_inputs = summary.pop("test_inputs")
    log.info(
        "SASRec: best epoch %d of %d, valid NDCG@5 %.4f, %.1f s",
        summary["best_epoch"], summary["epochs_run"], summary["best_valid_ndcg@5"], seconds,
    )  # fmt: skip
    extra: dict[str, Any] = {
        "params": int(sum(t.numel() for t in model.parameters())),
        "training": {k: v for k, v in summary.items() if k != "history"},
        "train_log": summary["history"],
        "train_seconds": seconds,
        "settings": asdict(p),
    }
    if "full" in evaluation["protocol"]:
        test = frame[frame["split"] == "test"].reset_index(drop=True)
        targets, seen = seen_items(test, seen_table, items)  # indices = model index - 1
        model.eval()
        with torch.no_grad():
            u = model.user_vectors(test_inputs)
            ranks = full_ranks(lambda rows: model.logits(u[rows]).double().numpy(), targets, seen)
        extra["full"] = full_record(ranks, len(items), bootstrap=bootstrap, seed=seed)
    digest = candidates_digest(frame)
    rec = eval_record(
        "sasrec", "reference", scores, users, digest, bootstrap=bootstrap, seed=seed, extra=extra
    )
    log.info("SASRec test NDCG@5 %.4f on %d users", rec["metrics"]["ndcg@5"], len(users))
    if "full" in extra:
        log.info("SASRec full-ranking test NDCG@5 %.4f", extra["full"]["metrics"]["ndcg@5"])
    write_json(metrics, rec)
    if table is not None:
        save_torch(table, learned_item_table(model, items))
    return rec


def learned_item_table(model: SASRec, items: pd.DataFrame) -> dict[str, Any]:
    """The item vectors that score items (the tied embedding rows 1..n, ``items.parquet``
    order; row 0 is padding) with the item ids they belong to."""
    rows = model.item.weight[1:].detach().float().cpu().clone()
    return {"item_ids": items["item_id"].tolist(), "table": rows}
