"""Snakemake script: distil one student offline from the teacher cache (resumable)."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.student import distill_student

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
distill_student(
    Path(sm.input.init),
    Path(sm.input.features),
    Path(sm.input.item_table),
    Path(sm.input.samples),
    Path(sm.input.cache),
    Path(sm.output.final),
    Path(sm.output.train_log),
    max_prompt_tokens=sm.params.max_prompt_tokens,
    distill_cfg=dict(sm.params.distill),
    seed=int(sm.wildcards.seed),
    device=sm.params.device,
    ckpt_dir=Path(sm.params.checkpoints),
)
