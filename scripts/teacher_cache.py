"""Snakemake script: one shard of the teacher analysis pass."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.teacher import cache_shard

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
cache_shard(
    Path(sm.input.teacher),
    Path(sm.input.features),
    Path(sm.input.samples),
    Path(sm.input.item_table),
    Path(sm.output.shard),
    shard=int(sm.wildcards.shard),
    n_shards=sm.params.n_shards,
    batch_size=sm.params.batch_size,
    max_prompt_tokens=sm.params.max_prompt_tokens,
    w_rating=sm.params.w_rating,
    device=sm.params.device,
    dtype=sm.params.dtype,
    device_map=sm.params.device_map,
)
