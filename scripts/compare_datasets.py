"""Snakemake script: hypotheses and layer importance compared across datasets."""

from layerkd.report.datasets import datasets_stage
from layerkd.runtime import run_stage

run_stage(datasets_stage, snakemake)  # noqa: F821 - injected by Snakemake
