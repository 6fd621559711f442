"""Snakemake script: ablation scores (loss increase when each layer is skipped)."""

from layerkd.importance.ablation import ablation_stage
from layerkd.runtime import run_stage

run_stage(ablation_stage, snakemake)  # noqa: F821 - injected by Snakemake
