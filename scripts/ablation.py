"""Snakemake script: ablation scores (loss increase when each layer is skipped)."""

from pathlib import Path

from layerkd.ablation import ablation_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
ablation_stage(
    Path(sm.input.teacher),
    Path(sm.input.features),
    Path(sm.input.samples),
    Path(sm.input.item_table),
    Path(sm.output.scores),
    max_samples=sm.params.max_samples,
    batch_size=sm.params.batch_size,
    max_prompt_tokens=sm.params.max_prompt_tokens,
    w_rating=sm.params.w_rating,
    device=sm.params.device,
    dtype=sm.params.dtype,
    device_map=sm.params.device_map,
)
