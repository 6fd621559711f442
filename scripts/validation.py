"""Snakemake script: rank correlations between importance methods (and ablation)."""

from layerkd.importance.agreement import agreement_stage
from layerkd.runtime import run_stage

run_stage(agreement_stage, snakemake)  # noqa: F821 - injected by Snakemake
