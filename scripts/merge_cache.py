"""Snakemake script: merge the teacher cache shards."""

from layerkd.runtime import run_stage
from layerkd.teacher.stages import merge_cache

run_stage(merge_cache, snakemake)  # noqa: F821 - injected by Snakemake
