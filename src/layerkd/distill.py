"""Offline distillation of a layer-selected student from cached teacher outputs.

Loss = w_task·CE(student scores, target) + w_kd·T²·KL(teacher ‖ student over candidates)
+ w_hidden·Σ_j [(1 − cos(s_j, t_{m(j)})) + β·MSE(s_j, t_{m(j)})] on last-token states, where
student layer ``j`` maps to teacher layer ``m(j)`` (the j-th kept layer)
+ w_rating·(MSE + CE) on the rating heads when ratings are known.
The teacher is never run here: its scores and hidden states come from the teacher cache.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from layerkd.models.backbone import LayerOutputs
from layerkd.models.recmodel import RecModel, RecOutput, rating_loss, task_loss
from layerkd.models.samples import SplitData
from layerkd.models.train import (
    epoch_order,
    optimizer_and_schedule,
    score_split,
    seed_everything,
    valid_ndcg5,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillParams:
    """Settings of ``distill`` (see the config schema for each key)."""

    epochs: int = 3
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    batch_size: int = 16
    patience: int = 2
    temperature: float = 2.0
    w_task: float = 1.0
    w_kd: float = 1.0
    w_hidden: float = 0.0
    hidden_beta: float = 0.1
    w_rating: float = 0.1
    seed: int = 0


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)), mean over samples."""
    t = temperature
    log_p_t = F.log_softmax(teacher / t, dim=-1)
    log_p_s = F.log_softmax(student / t, dim=-1)
    return (t * t) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, beta: float) -> torch.Tensor:
    """Σ over mapped layers of mean over samples of (1 − cos) + β·MSE; inputs (B, k, H)."""
    cos = F.cosine_similarity(student, teacher, dim=-1)  # (B, k)
    mse = (student - teacher).pow(2).mean(-1)
    return ((1 - cos) + beta * mse).mean(0).sum()


def distill_loss(
    out: RecOutput,
    rating: torch.Tensor,
    teacher_scores: torch.Tensor,
    student_hidden: torch.Tensor | None,
    teacher_hidden: torch.Tensor | None,
    p: DistillParams,
) -> dict[str, torch.Tensor]:
    """Every term of the distillation loss and their weighted ``total`` (terms with weight 0
    are not computed)."""
    terms: dict[str, torch.Tensor] = {}
    if p.w_task > 0:
        terms["task"] = task_loss(out, rating, 0.0)
    if p.w_kd > 0:
        terms["kd"] = kd_loss(out.scores, teacher_scores, p.temperature)
    if p.w_hidden > 0:
        if student_hidden is None or teacher_hidden is None:
            raise ValueError("distill.w_hidden > 0 needs hidden states of student and teacher")
        terms["hidden"] = hidden_loss(student_hidden, teacher_hidden, p.hidden_beta)
    if p.w_rating > 0:
        terms["rating"] = rating_loss(out, rating).mean()
    weights = {"task": p.w_task, "kd": p.w_kd, "hidden": p.w_hidden, "rating": p.w_rating}
    total = sum((weights[k] * v for k, v in terms.items()), torch.zeros(()))
    return {**terms, "total": total}


def distill(
    student: RecModel,
    kept: list[int],
    teacher_out: dict[str, torch.Tensor],
    train: SplitData,
    valid: SplitData,
    p: DistillParams,
) -> tuple[RecModel, pd.DataFrame]:
    """Train ``student`` (layers = teacher layers ``kept``) against cached teacher outputs."""
    seed_everything(p.seed)
    if teacher_out["scores"].shape[0] != len(train):
        raise ValueError(
            f"teacher cache holds {teacher_out['scores'].shape[0]} training samples, "
            f"samples.parquet has {len(train)}: rerun teacher_cache"
        )
    t_hidden = teacher_out["hidden"][:, kept] if p.w_hidden > 0 else None
    params = [prm for prm in student.parameters() if prm.requires_grad]
    steps_per_epoch = -(-len(train) // p.batch_size)
    opt, sched = optimizer_and_schedule(
        params, p.lr, p.weight_decay, steps_per_epoch * p.epochs, p.warmup
    )
    best = valid_ndcg5(score_split(student, valid, p.batch_size)[0])
    best_state = copy.deepcopy(student.state_dict())
    rows: list[dict[str, Any]] = [{"epoch": 0, "step": 0, "valid_ndcg@5": best}]
    bad, step = 0, 0
    for epoch in range(1, p.epochs + 1):
        student.train()
        bar = tqdm(epoch_order(len(train), p.batch_size, p.seed, epoch), desc=f"distill {epoch}")
        for idx in bar:
            b, cand, rating = train.batch(idx)
            with LayerOutputs(student.lm, keep_grad=True) as rec:
                out = student(b, cand)
            s_hidden = None
            if t_hidden is not None:
                s_hidden = torch.stack([o[:, -1] for o in rec.outputs if o is not None], dim=1)
            terms = distill_loss(
                out,
                rating,
                teacher_out["scores"][idx],
                s_hidden,
                None if t_hidden is None else t_hidden[idx],
                p,
            )
            opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            step += 1
            rows.append({"epoch": epoch, "step": step, **{k: float(v) for k, v in terms.items()}})
            bar.set_postfix(loss=f"{float(terms['total']):.3f}", best=f"{best:.3f}")
        ndcg = valid_ndcg5(score_split(student, valid, p.batch_size)[0])
        rows.append({"epoch": epoch, "step": step, "valid_ndcg@5": ndcg})
        log.info("epoch %d: validation NDCG@5 %.4f (best %.4f)", epoch, ndcg, best)
        if ndcg > best:
            best, bad, best_state = ndcg, 0, copy.deepcopy(student.state_dict())
        else:
            bad += 1
            if bad >= p.patience:
                break
    student.load_state_dict(best_state)
    return student, pd.DataFrame(rows)
