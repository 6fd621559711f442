"""Snakemake script: prepare items, interactions, samples and stats for one dataset."""

from layerkd.data.prepare import prepare_stage
from layerkd.runtime import run_stage

run_stage(prepare_stage, snakemake)  # noqa: F821 - injected by Snakemake
