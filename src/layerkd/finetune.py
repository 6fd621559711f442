"""Adapt the teacher to the recommendation task before any layer is analysed.

Two modes (``teacher.finetune.mode``):

* ``top``: train the top ``top_layers`` decoder layers, the final norm and the heads in full.
  The frozen lower layers run once; their output states are cached and the top layers train
  on the cache, so an epoch costs ``top_layers / L`` of a full forward+backward.
* ``lora``: LoRA adapters (``peft``) on every layer's attention projections plus the heads;
  the adapters are merged into the weights before saving, so layer statistics describe the
  adapted teacher.

Both early-stop on validation NDCG@5 and return the best model.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from layerkd.models.backbone import LayerOutputs, LayerSubset, decoder
from layerkd.models.recmodel import RecModel, RecOutput, task_loss
from layerkd.models.samples import SplitData
from layerkd.models.text import TokenBatch, batches
from layerkd.models.train import (
    epoch_order,
    optimizer_and_schedule,
    score_split,
    seed_everything,
    valid_ndcg5,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneParams:
    """Settings of ``teacher.finetune`` (see the config schema for each key)."""

    mode: str = "top"
    top_layers: int = 2
    epochs: int = 4
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    batch_size: int = 16
    patience: int = 2
    lora_r: int = 8
    lora_alpha: int = 16
    w_rating: float = 0.1
    seed: int = 0


class StateCache:
    """Hidden states entering layer ``start`` for every sample of a split (unpadded)."""

    def __init__(self, model: RecModel, data: SplitData, start: int, batch_size: int) -> None:
        self.data, self.states = data, []
        lm = model.lm
        with torch.no_grad():
            for rng in tqdm(
                batches(len(data), batch_size), desc=f"cache {data.split}", leave=False
            ):
                b, _, _ = data.batch(rng)
                if start == 0:
                    h = decoder(lm).embed_tokens(b.input_ids)
                else:
                    with LayerSubset(lm, list(range(start))), LayerOutputs(lm) as rec:
                        decoder(lm)(
                            input_ids=b.input_ids,
                            attention_mask=b.attention_mask,
                            position_ids=b.position_ids,
                            use_cache=False,
                        )
                    h = rec.outputs[-1]
                assert h is not None
                for row, mask in zip(h, b.attention_mask, strict=True):
                    self.states.append(row[mask.bool().to(row.device)].float().cpu())

    def batch(self, idx: list[int]) -> tuple[TokenBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(token batch, padded cached states, candidates, ratings) of samples ``idx``."""
        b, cand, rating = self.data.batch(idx)
        width = b.input_ids.shape[1]
        emb = torch.zeros(len(idx), width, self.states[0].shape[-1])
        for r, i in enumerate(idx):
            s = self.states[i]
            emb[r, width - s.shape[0] :] = s
        return b, emb, cand, rating


def _top_mode(
    model: RecModel, train: SplitData, valid: SplitData, p: FinetuneParams
) -> tuple[RecModel, list[dict[str, Any]]]:
    n_layers = model.n_layers
    if not 1 <= p.top_layers <= n_layers:
        raise ValueError(
            f"teacher.finetune.top_layers={p.top_layers} must be in [1, {n_layers}] "
            f"(the teacher has {n_layers} layers)"
        )
    start = n_layers - p.top_layers
    top = list(range(start, n_layers))
    for prm in model.lm.parameters():
        prm.requires_grad_(False)
    trainable: list[nn.Parameter] = [*model.heads.parameters()]
    for i in top:
        trainable += list(decoder(model.lm).layers[i].parameters())
    trainable += list(decoder(model.lm).norm.parameters())
    for prm in trainable:
        prm.requires_grad_(True)
    caches = {s.split: StateCache(model, s, start, p.batch_size) for s in (train, valid)}

    def fwd(cache: StateCache, idx: list[int]) -> tuple[RecOutput, torch.Tensor]:
        b, emb, cand, rating = cache.batch(idx)
        with LayerSubset(model.lm, top):
            return model(b, cand, inputs_embeds=emb), rating

    def evaluate() -> float:
        scores, _ = score_split(
            model, valid, p.batch_size, forward=lambda r: fwd(caches[valid.split], list(r))[0]
        )
        return valid_ndcg5(scores)

    return _train_loop(
        model, train, p, trainable, lambda idx: fwd(caches[train.split], idx), evaluate
    )


def _lora_mode(
    model: RecModel, train: SplitData, valid: SplitData, p: FinetuneParams
) -> tuple[RecModel, list[dict[str, Any]]]:
    from peft import LoraConfig, get_peft_model

    targets = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.lm.named_modules() if isinstance(m, nn.Linear)}
        & {"q_proj", "k_proj", "v_proj", "o_proj"}
    )
    peft_lm = get_peft_model(
        model.lm, LoraConfig(r=p.lora_r, lora_alpha=p.lora_alpha, target_modules=targets)
    )
    model.lm = peft_lm
    trainable = [prm for prm in model.parameters() if prm.requires_grad]

    def fwd(idx: list[int]) -> tuple[RecOutput, torch.Tensor]:
        b, cand, rating = train.batch(idx)
        return model(b, cand), rating

    def evaluate() -> float:
        return valid_ndcg5(score_split(model, valid, p.batch_size)[0])

    model, rows = _train_loop(model, train, p, trainable, fwd, evaluate)
    model.lm = peft_lm.merge_and_unload()
    return model, rows


def _train_loop(
    model: RecModel,
    train: SplitData,
    p: FinetuneParams,
    trainable: list[nn.Parameter],
    fwd: Any,
    evaluate: Any,
) -> tuple[RecModel, list[dict[str, Any]]]:
    """Epochs of AdamW + cosine schedule, early stopping on validation NDCG@5."""
    steps_per_epoch = -(-len(train) // p.batch_size)
    opt, sched = optimizer_and_schedule(
        trainable, p.lr, p.weight_decay, steps_per_epoch * p.epochs, p.warmup
    )
    best, best_state, bad, rows, step = evaluate(), None, 0, [], 0
    rows.append({"epoch": 0, "step": 0, "loss": float("nan"), "valid_ndcg@5": best})
    log.info("validation NDCG@5 before fine-tuning: %.4f", best)
    best_state = copy.deepcopy(model.state_dict())
    for epoch in range(1, p.epochs + 1):
        model.train()
        bar = tqdm(epoch_order(len(train), p.batch_size, p.seed, epoch), desc=f"epoch {epoch}")
        for idx in bar:
            out, rating = fwd(idx)
            loss = task_loss(out, rating, p.w_rating)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            step += 1
            rows.append({"epoch": epoch, "step": step, "loss": float(loss), "valid_ndcg@5": None})
            bar.set_postfix(loss=f"{float(loss):.3f}", best=f"{best:.3f}")
        ndcg = evaluate()
        rows.append({"epoch": epoch, "step": step, "loss": None, "valid_ndcg@5": ndcg})
        log.info("epoch %d: validation NDCG@5 %.4f (best %.4f)", epoch, ndcg, best)
        if ndcg > best:
            best, bad, best_state = ndcg, 0, copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= p.patience:
                log.info("early stop after epoch %d", epoch)
                break
    model.load_state_dict(best_state)
    return model, rows


def finetune(
    model: RecModel, train: SplitData, valid: SplitData, p: FinetuneParams
) -> tuple[RecModel, pd.DataFrame]:
    """Fine-tune ``model`` on the task in mode ``p.mode``; returns the best model and a log."""
    seed_everything(p.seed)
    if p.mode == "top":
        model, rows = _top_mode(model, train, valid, p)
    elif p.mode == "lora":
        model, rows = _lora_mode(model, train, valid, p)
    elif p.mode == "none":
        rows = [{"epoch": 0, "step": 0, "loss": None, "valid_ndcg@5": None}]
    else:
        raise ValueError(f"teacher.finetune.mode={p.mode!r}: expected one of top, lora, none")
    for prm in model.parameters():
        prm.requires_grad_(True)
    return model, pd.DataFrame(rows)
