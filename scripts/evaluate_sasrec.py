"""Snakemake script: the SASRec reference row, scored on the test candidates."""

from layerkd.evaluation.sasrec import evaluate_sasrec
from layerkd.runtime import run_stage

run_stage(evaluate_sasrec, snakemake)  # noqa: F821 - injected by Snakemake
