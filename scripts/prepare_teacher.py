"""Snakemake script: save the teacher backbone as an HF directory and encode the items."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.teacher import prepare_teacher

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
prepare_teacher(
    Path(sm.input.item_table),
    Path(sm.output.backbone),
    Path(sm.output.features),
    model=sm.params.model,
    tiny=dict(sm.params.tiny),
    max_item_tokens=sm.params.max_item_tokens,
    batch_size=sm.params.batch_size,
    seed=sm.params.seed,
    device=sm.params.device,
    dtype=sm.params.dtype,
    device_map=sm.params.device_map,
)
