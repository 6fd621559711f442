"""Snakemake script: the random and most-popular reference rankers."""

from layerkd.evaluation.reference import evaluate_reference
from layerkd.runtime import run_stage

run_stage(evaluate_reference, snakemake)  # noqa: F821 - injected by Snakemake
