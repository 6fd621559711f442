"""Offline distillation of a layer-selected student from cached teacher outputs.

Loss = w_task·CE(student scores, target) + w_kd·T²·KL(teacher ‖ student over candidates)
+ w_hidden·Σ_j [(1 − cos(a_j(s_j), t_{m(j)})) + β·MSE(a_j(s_j), t_{m(j)})] on last-token
states, where student layer ``j`` maps to teacher layer ``m(j)`` (the j-th kept layer) and
``a_j`` is the identity (keep students) or a learned projection (compact students)
+ w_rating·(MSE + CE) on the rating heads where ratings are known.
A weight of 0 switches its term off (it is not even computed). The teacher is never run here:
its scores and hidden states come from the teacher cache.

Training: AdamW, linear warmup then cosine decay, gradient clipping, gradient accumulation,
early stopping on validation NDCG@5 (optionally on a fixed subset of ``valid_samples`` users,
the same for every student), a fixed seed, bf16 autocast on CUDA (fp32 on CPU unless
asked), checkpoints every ``checkpoint_every`` optimiser steps (see :mod:`layerkd.checkpoint`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from layerkd.checkpoint import clear_checkpoints, load_checkpoint, save_checkpoint
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
TERMS = ("task", "kd", "hidden", "rating")


@dataclass(frozen=True)
class DistillParams:
    """Settings of ``distill`` (see the config schema for each key)."""

    epochs: int = 3
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup: float = 0.1
    batch_size: int = 16
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    patience: int = 2
    eval_every: int = 0
    valid_samples: int | None = None
    checkpoint_every: int = 0
    temperature: float = 2.0
    w_task: float = 1.0
    w_kd: float = 1.0
    w_hidden: float = 0.0
    hidden_beta: float = 0.1
    w_rating: float = 0.1
    train_embeddings: bool | None = None
    autocast: str = "auto"
    seed: int = 0


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T²·KL(softmax(teacher/T) ‖ softmax(student/T)), mean over samples."""
    t = temperature
    log_p_t = F.log_softmax(teacher.float() / t, dim=-1)
    log_p_s = F.log_softmax(student.float() / t, dim=-1)
    return (t * t) * (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1).mean()


def hidden_loss(student: torch.Tensor, teacher: torch.Tensor, beta: float) -> torch.Tensor:
    """Σ over mapped layers of mean over samples of (1 − cos) + β·MSE; inputs (B, k, H)."""
    student, teacher = student.float(), teacher.float()
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
    are not computed). ``student_hidden`` is already projected to the teacher's width."""
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
    zero = torch.zeros((), device=out.scores.device)
    total = sum((weights[k] * v for k, v in terms.items()), zero)
    return {**terms, "total": total}


def set_trainable(student: RecModel, train_embeddings: bool) -> None:
    """Train everything but the token embeddings (unless asked) and the LM head (unused)."""
    for prm in student.parameters():
        prm.requires_grad_(True)
    head = student.lm.get_output_embeddings()
    if head is not None:
        head.weight.requires_grad_(False)
    student.lm.get_input_embeddings().weight.requires_grad_(train_embeddings)


class Distiller:
    """One distillation run: the model, its optimiser and the run state, resumable."""

    def __init__(
        self,
        student: RecModel,
        kept: list[int],
        teacher_out: dict[str, torch.Tensor],
        train: SplitData,
        valid: SplitData,
        p: DistillParams,
        *,
        align: nn.ModuleList | None = None,
        device: str = "cpu",
    ) -> None:
        if teacher_out["scores"].shape[0] != len(train):
            raise ValueError(
                f"teacher cache holds {teacher_out['scores'].shape[0]} training samples, "
                f"samples.parquet has {len(train)}: rerun teacher_cache"
            )
        if p.autocast not in ("auto", "bf16", "off"):
            raise ValueError(f"distill.autocast={p.autocast!r}: expected auto, bf16 or off")
        if p.valid_samples and p.valid_samples < len(valid):  # the same subset for every run
            pick = np.random.default_rng(0).choice(len(valid), p.valid_samples, replace=False)
            valid = valid.subset(sorted(pick.tolist()))
        self.p, self.train, self.valid, self.dev = p, train, valid, torch.device(device)
        self.t_scores = teacher_out["scores"]
        self.t_hidden = teacher_out["hidden"][:, kept] if p.w_hidden > 0 else None
        self.align = align if align is not None else nn.ModuleList()
        if self.t_hidden is not None and not align:
            if student.lm.config.hidden_size != self.t_hidden.shape[-1]:
                raise ValueError("a student narrower than the teacher needs alignment maps")
        self.nets = nn.ModuleDict({"student": student, "align": self.align}).to(self.dev)
        self.student = student
        set_trainable(student, bool(p.train_embeddings))
        self.bf16 = p.autocast == "bf16" or (p.autocast == "auto" and self.dev.type == "cuda")
        n_batches = math.ceil(len(train) / p.batch_size)
        self.steps_per_epoch = math.ceil(n_batches / p.grad_accum)
        self.params = [prm for prm in self.nets.parameters() if prm.requires_grad]
        self.opt, self.sched = optimizer_and_schedule(
            self.params, p.lr, p.weight_decay, self.steps_per_epoch * p.epochs, p.warmup
        )
        self.run: dict[str, Any] = {}

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(self.dev.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _trainable(self) -> dict[str, torch.Tensor]:
        named = self.nets.named_parameters()
        return {n: prm.detach().clone() for n, prm in named if prm.requires_grad}

    def _load(self, weights: dict[str, torch.Tensor]) -> None:
        named = dict(self.nets.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                named[name].copy_(value)

    def evaluate(self) -> float:
        """Validation NDCG@5 of the current student."""

        def forward(rng: range) -> RecOutput:
            b, cand, _ = self.valid.batch(rng)
            with self._autocast():
                return self.student(b.to(self.dev), cand.to(self.dev))

        scores = score_split(self.student, self.valid, self.p.batch_size, forward=forward)[0]
        return valid_ndcg5(scores)

    def _micro(self, idx: list[int], share: float) -> dict[str, float]:
        """Forward and backward one micro-batch (loss scaled by its ``share`` of the step)."""
        b, cand, rating = self.train.batch(idx)
        b, cand, rating = b.to(self.dev), cand.to(self.dev), rating.to(self.dev)
        t_scores = self.t_scores[idx].to(self.dev)
        hooks = LayerOutputs(self.student.lm, keep_grad=True)
        with self._autocast(), hooks if self.t_hidden is not None else contextlib.nullcontext():
            out = self.student(b, cand)
            s_hidden = t_hidden = None
            if self.t_hidden is not None:
                last = [o[:, -1] for o in hooks.outputs if o is not None]
                if self.align:
                    last = [a(x) for a, x in zip(self.align, last, strict=True)]
                s_hidden = torch.stack(last, dim=1)
                t_hidden = self.t_hidden[idx].to(self.dev)
            terms = distill_loss(out, rating, t_scores, s_hidden, t_hidden, self.p)
        (terms["total"] * share).backward()
        return {k: float(v.detach()) * share for k, v in terms.items()}

    def step(self, group: list[list[int]]) -> dict[str, float]:
        """One optimiser step over the micro-batches ``group`` (lists of sample indices);
        returns the learning rate used and the step's mean loss terms."""
        n = sum(len(g) for g in group)
        sums: dict[str, float] = {}
        self.opt.zero_grad(set_to_none=True)
        for idx in group:
            for k, v in self._micro(idx, len(idx) / n).items():
                sums[k] = sums.get(k, 0.0) + v
        if self.p.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.p.max_grad_norm)
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.sched.step()
        return {"lr": lr, **sums}

    def _record_eval(self) -> None:
        r = self.run
        ndcg = self.evaluate()
        r["rows"].append({"epoch": r["epoch"], "step": r["step"], "valid_ndcg@5": ndcg})
        r["last_eval"], r["valid"] = r["step"], ndcg
        log.info("step %d: validation NDCG@5 %.4f (best %.4f)", r["step"], ndcg, r["best"])
        if ndcg > r["best"]:
            r["best"], r["bad"], r["best_weights"] = ndcg, 0, self._trainable()
        else:
            r["bad"] += 1
            r["stopped"] = r["bad"] >= self.p.patience

    def _state(self, fp: str) -> dict[str, Any]:
        return {
            "fingerprint": fp,
            "run": self.run,
            "weights": self._trainable(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
        }

    def _start(self, ckpt_dir: Path | None, fp: str) -> None:
        state = load_checkpoint(ckpt_dir, fp) if ckpt_dir is not None else None
        if state is not None:
            self.run = state["run"]
            self._load(state["weights"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
            return
        seed_everything(self.p.seed)
        best = self.evaluate()
        self.run = {
            "epoch": 1, "batch_pos": 0, "step": 0, "best": best, "valid": best, "bad": 0,
            "last_eval": 0, "stopped": False, "best_weights": self._trainable(),
            "rows": [{"epoch": 0, "step": 0, "valid_ndcg@5": best}],
        }  # fmt: skip

    def fit(self, ckpt_dir: Path | None = None, fp: str = "") -> pd.DataFrame:
        """Train to the end (resuming from ``ckpt_dir`` when it holds a checkpoint of the
        same settings ``fp``); load the best weights; return the training log."""
        p = self.p
        self._start(ckpt_dir, fp)
        r = self.run
        total = self.steps_per_epoch * p.epochs
        bar = tqdm(total=total, initial=r["step"], desc="distill", unit="step")
        while r["epoch"] <= p.epochs and not r["stopped"]:
            self.nets.train()
            order = epoch_order(len(self.train), p.batch_size, p.seed, r["epoch"])
            while r["batch_pos"] < len(order) and not r["stopped"]:
                group = order[r["batch_pos"] : r["batch_pos"] + p.grad_accum]
                row = self.step(group)
                r["batch_pos"] += len(group)
                r["step"] += 1
                r["rows"].append({"epoch": r["epoch"], "step": r["step"], **row})
                if p.eval_every and r["step"] % p.eval_every == 0:
                    self._record_eval()
                    self.nets.train()
                if ckpt_dir is not None and p.checkpoint_every:
                    if r["step"] % p.checkpoint_every == 0:
                        save_checkpoint(ckpt_dir, r["step"], self._state(fp))
                bar.update(1)
                bar.set_postfix(loss=f"{row['total']:.3f}", valid_ndcg5=f"{r['valid']:.3f}")
            if not r["stopped"] and not p.eval_every:
                self._record_eval()
            r["epoch"] += 1
            r["batch_pos"] = 0
        if not r["stopped"] and r["last_eval"] != r["step"]:
            self._record_eval()
        bar.close()
        self._load(r["best_weights"])
        if ckpt_dir is not None:
            clear_checkpoints(ckpt_dir)
        return pd.DataFrame(r["rows"])


def distill(
    student: RecModel,
    kept: list[int],
    teacher_out: dict[str, torch.Tensor],
    train: SplitData,
    valid: SplitData,
    p: DistillParams,
    *,
    align: nn.ModuleList | None = None,
    ckpt_dir: Path | None = None,
    fingerprint: str = "",
    device: str = "cpu",
) -> tuple[RecModel, pd.DataFrame]:
    """Train ``student`` (layers = teacher layers ``kept``) against cached teacher outputs;
    returns the best student (by validation NDCG@5) and the per-step/per-eval log."""
    runner = Distiller(student, kept, teacher_out, train, valid, p, align=align, device=device)
    fp = fingerprint or "none"
    frame = runner.fit(ckpt_dir, f"{fp}:{sorted(asdict(p).items())}")
    runner.nets.cpu()
    return student, frame
