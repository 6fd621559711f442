"""The one training loop: teacher fine-tuning and student distillation both run through :func:`fit`.

A caller supplies a :class:`Task` (its loss on a batch of training samples, and its validation
NDCG@5) and the ordered list of parameters to train; :func:`fit` owns the rest:

* AdamW, linear warmup then cosine decay (:func:`~layerkd.models.train.optimizer_and_schedule`),
  gradient clipping (``max_grad_norm``; 0 switches it off) and gradient accumulation (each
  micro-batch's loss is scaled by its share of the step's samples);
* bf16 autocast of the forward passes (``autocast``: ``auto`` = on CUDA only, ``bf16``, ``off``),
  with fp32 master weights;
* a seeded shuffled batch order per epoch (:func:`~layerkd.models.train.epoch_order`);
* validation after every epoch, or every ``eval_every`` optimiser steps; early stopping after
  ``patience`` evaluations without a gain; ``epochs`` is a ceiling;
* the best weights so far, kept as the trainable parameters only and on the CPU (never a second
  copy of the model on the device), loaded back at the end;
* checkpoints every ``checkpoint_every`` optimiser steps (:mod:`layerkd.models.checkpoint`):
  a run killed at any point and started again resumes exactly where the last checkpoint was,
  and ends with the same weights and log as an uninterrupted run;
* a non-finite loss stops the run with an error (before the update), never silently;
* one log row per optimiser step (``epoch, step, lr`` and the mean loss terms) and per
  evaluation (``epoch, step, valid_ndcg@5``).
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from layerkd.models.checkpoint import clear_checkpoints, load_checkpoint, save_checkpoint
from layerkd.models.train import epoch_order, optimizer_and_schedule, seed_everything

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitParams:
    """Settings of the loop (``teacher.finetune`` and ``distill`` in the config schema); the
    settings of fine-tuning and of distillation extend it."""

    epochs: int
    lr: float
    weight_decay: float
    warmup: float
    batch_size: int
    grad_accum: int
    max_grad_norm: float
    patience: int
    eval_every: int
    checkpoint_every: int
    seed: int
    autocast: str


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of a forward pass: bf16 for ``bf16``, and for ``auto`` on CUDA;
    nothing otherwise (fp32 on CPU: CPU bf16 is slow and changes results)."""
    if mode not in ("auto", "bf16", "off"):
        raise ValueError(f"autocast={mode!r}: expected auto, bf16 or off")
    if mode == "bf16" or (mode == "auto" and device.type == "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Task(Protocol):
    """What a training run supplies to :func:`fit`."""

    def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
        """Loss terms on training samples ``idx``, with their weighted sum as ``total``."""
        ...

    def evaluate(self) -> float:
        """Validation NDCG@5 of the current weights."""
        ...

    # optional: ``start_epoch(epoch)``, called before every epoch's first step (and again on
    # resuming inside an epoch), e.g. to redraw negatives


class Run:
    """The trainable weights (by name in ``module``), optimiser, schedule and run state of one
    :func:`fit` call."""

    def __init__(
        self,
        module: nn.Module,
        params: list[nn.Parameter],
        p: FitParams,
        n: int,
        total_steps: int | None = None,
    ):
        """``total_steps`` sets the length of the lr schedule (default: ``epochs`` epochs of
        ``n`` samples; the screen runs a few steps with a schedule of their own)."""
        names = {id(prm): name for name, prm in module.named_parameters()}
        missing = [i for i, prm in enumerate(params) if id(prm) not in names]
        if missing:
            raise ValueError(f"trainable parameters {missing} are not parameters of the module")
        self.module, self.params, self.p = module, params, p
        self.device = params[0].device if params else torch.device("cpu")
        self.names = [names[id(prm)] for prm in params]
        self.steps_per_epoch = math.ceil(math.ceil(n / p.batch_size) / p.grad_accum)
        total = total_steps if total_steps is not None else self.steps_per_epoch * p.epochs
        self.opt, self.sched = optimizer_and_schedule(params, p.lr, p.weight_decay, total, p.warmup)
        self.state: dict[str, Any] = {}

    def weights(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the trainable parameters."""
        pairs = zip(self.names, self.params, strict=True)
        return {n: prm.detach().to("cpu", copy=True) for n, prm in pairs}

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, prm in zip(self.names, self.params, strict=True):
                prm.copy_(weights[name])

    def checkpoint(self, fp: str) -> dict[str, Any]:
        return {
            "fingerprint": fp,
            "run": self.state,
            "weights": self.weights(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
        }

    def resume(self, ckpt: dict[str, Any]) -> None:
        self.state = ckpt["run"]
        self.load(ckpt["weights"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])


def step(task: Task, run: Run, group: list[list[int]]) -> dict[str, float]:
    """One optimiser step over the micro-batches ``group`` (lists of training-sample indices):
    returns the lr used and the step's mean loss terms (benchmarks time this alone)."""
    n = sum(len(g) for g in group)
    sums: dict[str, float] = {}
    run.opt.zero_grad(set_to_none=True)
    for idx in group:
        share = len(idx) / n
        with autocast(run.p.autocast, run.device):
            terms = task.loss(idx)
        (terms["total"] * share).backward()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach()) * share
    if not math.isfinite(sums["total"]):  # before the update: the weights stay as they were
        raise FloatingPointError(
            f"non-finite training loss {sums} at optimiser step {run.state.get('step', 0) + 1}"
        )
    if run.p.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(run.params, run.p.max_grad_norm)
    lr = run.opt.param_groups[0]["lr"]
    run.opt.step()
    run.sched.step()
    return {"lr": lr, **sums}


def _evaluate(task: Task, run: Run) -> None:
    r = run.state
    with autocast(run.p.autocast, run.device):
        ndcg = task.evaluate()
    r["rows"].append({"epoch": r["epoch"], "step": r["step"], "valid_ndcg@5": ndcg})
    r["last_eval"], r["valid"] = r["step"], ndcg
    log.info("step %d: validation NDCG@5 %.4f (best %.4f)", r["step"], ndcg, r["best"])
    if ndcg > r["best"]:
        r["best"], r["bad"], r["best_weights"] = ndcg, 0, run.weights()
    else:
        r["bad"] += 1
        r["stopped"] = r["bad"] >= run.p.patience
        if r["stopped"]:
            log.info("early stop at step %d (patience %d)", r["step"], run.p.patience)


def fit(
    task: Task,
    module: nn.Module,
    params: list[nn.Parameter],
    n_train: int,
    p: FitParams,
    *,
    ckpt_dir: Path | None = None,
    fingerprint: str = "",
    desc: str = "train",
) -> pd.DataFrame:
    """Train ``params`` (parameters of ``module``, in this order) on ``task`` over ``n_train``
    training samples; resume from ``ckpt_dir`` when it holds a checkpoint of the same
    ``fingerprint`` (settings and inputs); load the best weights; return the training log."""
    run = Run(module, params, p, n_train)
    fp = f"{fingerprint or 'none'}:{sorted(vars(p).items())}"
    ckpt = load_checkpoint(ckpt_dir, fp) if ckpt_dir is not None else None
    if ckpt is not None:
        run.resume(ckpt)
    else:
        seed_everything(p.seed)
        with autocast(p.autocast, run.device):
            best = task.evaluate()
        log.info("validation NDCG@5 before training: %.4f", best)
        run.state = {
            "epoch": 1, "batch_pos": 0, "step": 0, "best": best, "valid": best, "bad": 0,
            "last_eval": 0, "stopped": False, "best_weights": run.weights(),
            "rows": [{"epoch": 0, "step": 0, "valid_ndcg@5": best}],
        }  # fmt: skip
    r = run.state
    bar = tqdm(total=run.steps_per_epoch * p.epochs, initial=r["step"], desc=desc, unit="step")
    while r["epoch"] <= p.epochs and not r["stopped"]:
        module.train()
        if hasattr(task, "start_epoch"):
            task.start_epoch(r["epoch"])
        order = epoch_order(n_train, p.batch_size, p.seed, r["epoch"])
        while r["batch_pos"] < len(order) and not r["stopped"]:
            group = order[r["batch_pos"] : r["batch_pos"] + p.grad_accum]
            row = step(task, run, group)
            r["batch_pos"] += len(group)
            r["step"] += 1
            r["rows"].append({"epoch": r["epoch"], "step": r["step"], **row})
            if p.eval_every and r["step"] % p.eval_every == 0:
                _evaluate(task, run)
                module.train()
            if ckpt_dir is not None and p.checkpoint_every and r["step"] % p.checkpoint_every == 0:
                save_checkpoint(ckpt_dir, r["step"], run.checkpoint(fp))
            bar.update(1)
            bar.set_postfix(loss=f"{row['total']:.3f}", valid_ndcg5=f"{r['valid']:.3f}")
        if not r["stopped"] and not p.eval_every:
            _evaluate(task, run)
        r["epoch"] += 1
        r["batch_pos"] = 0
    if not r["stopped"] and r["last_eval"] != r["step"]:
        _evaluate(task, run)
    bar.close()
    run.load(r["best_weights"])
    if ckpt_dir is not None:
        clear_checkpoints(ckpt_dir)
    return pd.DataFrame(r["rows"])
