"""Snakemake script: fine-tune the teacher on the recommendation task."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.teacher import finetune_teacher

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
finetune_teacher(
    Path(sm.input.backbone),
    Path(sm.input.features),
    Path(sm.input.samples),
    Path(sm.input.item_table),
    Path(sm.output.teacher),
    Path(sm.output.train_log),
    head_dim=sm.params.head_dim,
    max_prompt_tokens=sm.params.max_prompt_tokens,
    seed=sm.params.seed,
    finetune_cfg=dict(sm.params.finetune),
    device=sm.params.device,
    dtype=sm.params.dtype,
)
