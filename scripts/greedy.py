"""Snakemake script: greedy layer removal scores (SLEB-style removal order)."""

from layerkd.importance.greedy import greedy_stage
from layerkd.runtime import run_stage

run_stage(greedy_stage, snakemake)  # noqa: F821 - injected by Snakemake
