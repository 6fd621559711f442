"""Snakemake script: per-layer importance scores of one method."""

from layerkd.importance.scores import score_stage
from layerkd.runtime import run_stage

run_stage(score_stage, snakemake)  # noqa: F821 - injected by Snakemake
