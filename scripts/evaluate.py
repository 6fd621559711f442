"""Snakemake script: evaluate one model (teacher or student) on the test candidates."""

from layerkd.evaluation.evaluate import evaluate_model
from layerkd.runtime import run_stage

run_stage(evaluate_model, snakemake)  # noqa: F821 - injected by Snakemake
