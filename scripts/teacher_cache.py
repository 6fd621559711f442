"""Snakemake script: one shard of the teacher analysis pass."""

from layerkd.runtime import run_stage
from layerkd.teacher.stages import cache_shard

run_stage(cache_shard, snakemake)  # noqa: F821 - injected by Snakemake
