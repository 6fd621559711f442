"""Adapt the teacher to the recommendation task before any layer is analysed.

Two modes (``teacher.finetune.mode``):

* ``top``: train the top ``top_layers`` decoder layers, the final norm and the heads in full.
  The frozen lower layers run once; their output states are cached and the top layers train
  on the cache, so an epoch costs ``top_layers / L`` of a full forward+backward.
* ``lora``: LoRA adapters (``peft``) on every layer's ``lora_targets`` projections (the
  attention's by default; E4SRec and SLMRec adapt the MLP's) plus the heads; the adapters are
  merged into the weights before saving, so layer statistics describe the adapted teacher.

In the ID modes of ``teacher.items`` the soft tokens of item slots enter at layer 0; in
``top`` mode the states entering the trained layers are cached once, so the slot projection
(``item_in``) keeps its initial weights there and trains only in ``lora`` mode (the table, when
``trainable``, still trains through the item tower). ``loss`` picks the objective: the
sample's candidates or the whole catalogue (:func:`~layerkd.models.recmodel.task_loss`).

Both train through the one loop :func:`layerkd.models.fit.fit` (early stopping on validation
NDCG@5, checkpoints and resume) and return the best model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from layerkd.models.backbone import LayerOutputs, LayerSubset, decoder
from layerkd.models.fit import FitParams, fit
from layerkd.models.recmodel import RecModel, RecOutput, task_loss
from layerkd.models.samples import SplitData
from layerkd.models.text import TokenBatch, batches
from layerkd.models.train import FullRanking, seed_everything, validation_ndcg5
from layerkd.teacher.negatives import EpochNegatives

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneParams(FitParams):
    """Settings of ``teacher.finetune`` (the config schema describes each key and holds its
    default): the loop's (:class:`FitParams`, with the teacher's ``seed``) and these."""

    mode: str
    top_layers: int
    lora_r: int
    lora_alpha: int
    w_rating: float
    loss: str = "sampled"
    negatives: str = "epoch"
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class _Task:
    """The fine-tuning task for :func:`fit`: the task loss of a forward, validation NDCG@5."""

    forward: Any  # (sample indices) -> (RecOutput, ratings)
    evaluate_fn: Any  # () -> float
    w_rating: float
    objective: str
    negatives: EpochNegatives | None = None

    def start_epoch(self, epoch: int) -> None:
        """Redraw the training negatives of ``epoch`` (``teacher.finetune.negatives: epoch``)."""
        if self.negatives is not None:
            self.negatives.start_epoch(epoch)

    def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
        out, rating = self.forward(idx)
        return {"total": task_loss(out, rating, self.w_rating, objective=self.objective)}

    def evaluate(self) -> float:
        return float(self.evaluate_fn())


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
                soft = model.embed(b.input_ids)  # item slots as soft tokens; None: text only
                if start == 0:
                    h = decoder(lm).embed_tokens(b.input_ids) if soft is None else soft
                else:
                    with LayerSubset(lm, list(range(start))), LayerOutputs(lm) as rec:
                        decoder(lm)(
                            input_ids=b.input_ids if soft is None else None,
                            inputs_embeds=soft,
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
    model: RecModel,
    train: SplitData,
    valid: SplitData,
    p: FinetuneParams,
    full: FullRanking | None,
    negatives: EpochNegatives | None = None,
    **fit_kw: Any,
) -> tuple[RecModel, pd.DataFrame]:
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
        forward = lambda r: fwd(caches[valid.split], list(r))[0]  # noqa: E731
        return validation_ndcg5(model, valid, p.batch_size, full=full, forward=forward)

    task = _Task(lambda idx: fwd(caches[train.split], idx), evaluate, p.w_rating, p.loss, negatives)
    return model, fit(task, model, trainable, len(train), p, **fit_kw)


def _lora_mode(
    model: RecModel,
    train: SplitData,
    valid: SplitData,
    p: FinetuneParams,
    full: FullRanking | None,
    negatives: EpochNegatives | None = None,
    **fit_kw: Any,
) -> tuple[RecModel, pd.DataFrame]:
    from peft import LoraConfig, get_peft_model

    present = {
        n.rsplit(".", 1)[-1] for n, m in model.lm.named_modules() if isinstance(m, nn.Linear)
    }
    targets = sorted(present & set(p.lora_targets))
    if not targets:
        raise ValueError(
            f"teacher.finetune.lora_targets={list(p.lora_targets)}: the model has none of them "
            f"(its linear layers: {sorted(present)})"
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
        return validation_ndcg5(model, valid, p.batch_size, full=full)

    task = _Task(fwd, evaluate, p.w_rating, p.loss, negatives)
    rows = fit(task, model, trainable, len(train), p, **fit_kw)
    model.lm = peft_lm.merge_and_unload()
    return model, rows


def finetune(
    model: RecModel,
    train: SplitData,
    valid: SplitData,
    p: FinetuneParams,
    *,
    ckpt_dir: Path | None = None,
    fingerprint: str = "",
    full: FullRanking | None = None,
    negatives: EpochNegatives | None = None,
) -> tuple[RecModel, pd.DataFrame]:
    """Fine-tune ``model`` on the task in mode ``p.mode``; returns the best model and a log.
    ``ckpt_dir`` enables checkpoints (every ``p.checkpoint_every`` steps) and resuming. Early
    stopping reads validation NDCG@5 under the sampled protocol, or with ``full`` (targets and
    seen items of the validation rows) under full ranking. ``negatives`` redraws the training
    negatives every epoch (:mod:`layerkd.teacher.negatives`)."""
    seed_everything(p.seed)
    fit_kw = {"ckpt_dir": ckpt_dir, "fingerprint": fingerprint, "negatives": negatives}
    if p.mode == "top":
        model, rows = _top_mode(model, train, valid, p, full, desc="fine-tune", **fit_kw)
    elif p.mode == "lora":
        model, rows = _lora_mode(model, train, valid, p, full, desc="fine-tune (LoRA)", **fit_kw)
    elif p.mode == "none":
        rows = pd.DataFrame([{"epoch": 0, "step": 0, "valid_ndcg@5": None}])
    else:
        raise ValueError(f"teacher.finetune.mode={p.mode!r}: expected one of top, lora, none")
    for prm in model.parameters():
        prm.requires_grad_(True)
    return model, rows
