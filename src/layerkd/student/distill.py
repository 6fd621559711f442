"""Offline distillation of a layer-selected student from cached teacher outputs.

Loss = w_task·CE(student scores, target) + w_kd·T²·KL(teacher ‖ student over candidates, or
over the whole catalogue with ``distill.kd: catalogue``)
+ w_hidden·Σ_j [(1 − cos(a_j(s_j), t_{m(j)})) + β·MSE(a_j(s_j), t_{m(j)})] on last-token
states, where student layer ``j`` maps to teacher layer ``m(j)`` (the j-th kept layer) and
``a_j`` is the identity (keep students) or a learned projection (compact students)
+ w_rating·(MSE + CE) on the rating heads where ratings are known.
A weight of 0 switches its term off (it is not even computed). The teacher is never run here:
its scores and hidden states come from the teacher cache.

Training runs through the one loop :func:`layerkd.models.fit.fit` (AdamW, warmup + cosine,
clipping, accumulation, early stopping on validation NDCG@5, checkpoints and resume); here:
validation on a fixed subset of ``valid_samples`` users of the select half of the validation
users (the same for every student; the judge half is the report's), bf16
autocast on CUDA (fp32 on CPU unless asked), applied by the loop.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from layerkd.io import atomic_dir, write_parquet
from layerkd.models.backbone import LayerOutputs
from layerkd.models.checkpoint import file_digest, fingerprint
from layerkd.models.fit import FitParams, fit
from layerkd.models.recmodel import (
    HEADS_FILE,
    META_FILE,
    RecModel,
    RecOutput,
    catalogue_scores,
    load_features,
    load_recmodel,
    rating_loss,
    save_recmodel,
    task_loss,
)
from layerkd.models.samples import SplitData, half_rows, load_split
from layerkd.models.train import score_split, valid_ndcg5
from layerkd.runtime import device_of
from layerkd.student.compact import load_alignment, save_alignment
from layerkd.teacher.store import InMemoryOutputs, TeacherCache, teacher_outputs

log = logging.getLogger(__name__)
TERMS = ("task", "kd", "hidden", "rating")


@dataclass(frozen=True)
class DistillParams(FitParams):
    """Settings of ``distill`` (the config schema describes each key and holds its default):
    the loop's (:class:`FitParams`; ``seed`` is the student's training seed) and these, with
    ``train_embeddings`` resolved to a bool."""

    valid_samples: int | None
    temperature: float
    w_task: float
    w_kd: float
    w_hidden: float
    hidden_beta: float
    w_rating: float
    train_embeddings: bool
    kd: str = "candidates"


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
        student_scores = out.catalogue if p.kd == "catalogue" else out.scores
        assert student_scores is not None
        terms["kd"] = kd_loss(student_scores, teacher_scores, p.temperature)
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


@torch.no_grad()
def teacher_item_tower(student: RecModel) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's item vectors (n_items, d) and item bias, read from a student before it
    trains: every student starts with the teacher's item tower (a compact student re-bases
    only its user projection and slot map, :mod:`layerkd.student.compact`)."""
    heads = student.heads
    return heads.item_vectors(student.item_features).detach().clone(), heads.item_bias.clone()


def catalogue_target(
    user: torch.Tensor, item_vectors: torch.Tensor, item_bias: torch.Tensor
) -> torch.Tensor:
    """The teacher's scores of every item (B, n_items) from its cached user vectors (B, d):
    nothing ``n_items`` wide is cached, the KD target over the catalogue is recomputed."""
    return catalogue_scores(user.float(), item_vectors.to(user.device), item_bias.to(user.device))


def set_trainable(student: RecModel, train_embeddings: bool) -> None:
    """Train everything but the token embeddings (unless asked) and the LM head (unused)."""
    for prm in student.parameters():
        prm.requires_grad_(True)
    head = student.lm.get_output_embeddings()
    if head is not None:
        head.weight.requires_grad_(False)
    student.lm.get_input_embeddings().weight.requires_grad_(train_embeddings)


class _DistillTask:
    """One distillation run as a :class:`~layerkd.models.fit.Task`: the distillation loss of
    a micro-batch against the cached teacher outputs, and validation NDCG@5."""

    def __init__(
        self,
        student: RecModel,
        kept: list[int],
        teacher_out: TeacherCache | InMemoryOutputs,
        train: SplitData,
        valid: SplitData,
        p: DistillParams,
        align: nn.ModuleList,
        device: torch.device,
    ) -> None:
        if len(teacher_out) != len(train):
            raise ValueError(
                f"teacher cache holds {len(teacher_out)} training samples, "
                f"samples.parquet has {len(train)}: rerun teacher_cache"
            )
        if p.valid_samples and p.valid_samples < len(valid):  # the same subset for every run
            pick = np.random.default_rng(0).choice(len(valid), p.valid_samples, replace=False)
            valid = valid.subset(sorted(pick.tolist()))
        self.student, self.align, self.p = student, align, p
        self.train, self.valid, self.dev = train, valid, device
        self.teacher, self.kept, self.use_hidden = teacher_out, kept, p.w_hidden > 0
        self.t_items: tuple[torch.Tensor, torch.Tensor] | None = None
        if p.kd == "catalogue":  # the student's heads are still the teacher's here
            self.t_items = teacher_item_tower(student)
        elif p.kd != "candidates":
            raise ValueError(f"distill.kd={p.kd!r}: expected candidates or catalogue")
        if self.use_hidden:
            t_width = teacher_out.rows("hidden", [0]).shape[-1]
            if not align and student.lm.config.hidden_size != t_width:
                raise ValueError("a student narrower than the teacher needs alignment maps")

    def evaluate(self) -> float:
        """Validation NDCG@5 of the current student."""

        def forward(rng: range) -> RecOutput:
            b, cand, _ = self.valid.batch(rng)
            return self.student(b.to(self.dev), cand.to(self.dev))

        scores = score_split(self.student, self.valid, self.p.batch_size, forward=forward)[0]
        return valid_ndcg5(scores)

    def loss(self, idx: list[int]) -> dict[str, torch.Tensor]:
        """Every loss term of the micro-batch ``idx`` and their weighted ``total``."""
        b, cand, rating = self.train.batch(idx)
        b, cand, rating = b.to(self.dev), cand.to(self.dev), rating.to(self.dev)
        if self.t_items is None:
            t_scores = self.teacher.rows("scores", idx).to(self.dev)
        else:
            t_scores = catalogue_target(self.teacher.rows("user", idx).to(self.dev), *self.t_items)
        hooks = LayerOutputs(self.student.lm, keep_grad=True)
        with hooks if self.use_hidden else contextlib.nullcontext():
            out = self.student(b, cand)
            s_hidden = t_hidden = None
            if self.use_hidden:
                last = [o[:, -1] for o in hooks.outputs if o is not None]
                if self.align:
                    last = [a(x) for a, x in zip(self.align, last, strict=True)]
                s_hidden = torch.stack(last, dim=1)
                t_hidden = self.teacher.rows("hidden", idx)[:, self.kept].to(self.dev).float()
            return distill_loss(out, rating, t_scores, s_hidden, t_hidden, self.p)


def distill_setup(
    student: RecModel,
    kept: list[int],
    teacher_out: Any,
    train: SplitData,
    valid: SplitData,
    p: DistillParams,
    *,
    align: nn.ModuleList | None = None,
    device: str = "cpu",
) -> tuple[_DistillTask, nn.ModuleDict, list[nn.Parameter]]:
    """The task, the modules (student and alignment maps, on ``device``) and the ordered
    trainable parameters of one distillation run, as :func:`~layerkd.models.fit.fit` takes
    them."""
    align = align if align is not None else nn.ModuleList()
    dev = torch.device(device)
    nets = nn.ModuleDict({"student": student, "align": align}).to(dev)
    set_trainable(student, bool(p.train_embeddings))
    task = _DistillTask(student, kept, teacher_outputs(teacher_out), train, valid, p, align, dev)
    return task, nets, [prm for prm in nets.parameters() if prm.requires_grad]


def distill(
    student: RecModel,
    kept: list[int],
    teacher_out: Any,
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
    task, nets, params = distill_setup(
        student, kept, teacher_out, train, valid, p, align=align, device=device
    )
    frame = fit(
        task,
        nets,
        params,
        len(train),
        p,
        ckpt_dir=ckpt_dir,
        fingerprint=fingerprint,
        desc="distill",
    )
    nets.cpu()
    return student, frame


def distill_student(
    *,
    init: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    cache: Path,
    final: Path,
    train_log: Path,
    max_prompt_tokens: int,
    distill_cfg: dict[str, Any],
    seed: int,
    checkpoints: Path | None,
    device: str,
    dtype: str,
    device_map: str | None,
) -> pd.DataFrame:
    """Distil the student in ``init`` from the cached teacher outputs in ``cache``; save the
    best as ``final`` and the log as ``train_log``; the teacher itself is never loaded.

    ``seed`` is the student's training seed; ``checkpoints`` (a directory, or None) makes the
    run resumable. Training keeps fp32 weights on ``device`` (bf16 through ``autocast``), so
    ``dtype`` and ``device_map`` do not apply here.
    """
    del dtype, device_map
    cfg = {k: v for k, v in distill_cfg.items() if k != "seeds"}
    cfg["seed"] = int(seed)
    items, frame = pd.read_parquet(item_table), pd.read_parquet(samples)
    model, tok, meta = load_recmodel(init, load_features(features, items))
    if cfg["train_embeddings"] is None:  # auto: train them only in random students
        cfg["train_embeddings"] = meta.get("init") == "random"
    params = DistillParams(**cfg)
    align = load_alignment(init, int(meta.get("teacher_hidden", model.lm.config.hidden_size)))
    teacher_out = TeacherCache(cache)
    train = load_split(frame, items, tok, "train", max_prompt_tokens, model.items_mode)
    valid = load_split(
        half_rows(frame, "select"), items, tok, "valid", max_prompt_tokens, model.items_mode
    )
    fp = fingerprint(
        file_digest(init / HEADS_FILE, init / META_FILE, init / "config.json"),
        file_digest(cache, samples),
        max_prompt_tokens,
    )
    model, log_frame = distill(
        model,
        meta["layers"],
        teacher_out,
        train,
        valid,
        params,
        align=align,
        ckpt_dir=Path(checkpoints) if checkpoints else None,
        fingerprint=fp,
        device=device_of(device),
    )
    with atomic_dir(final) as tmp:
        save_recmodel(model, tok, tmp, {**meta, "seed": params.seed, "distill": asdict(params)})
        if align is not None:
            save_alignment(align, tmp)
    write_parquet(train_log, log_frame)
    return log_frame
