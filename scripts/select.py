"""Snakemake script: the layers one selection keeps."""

from layerkd.runtime import run_stage
from layerkd.selection.stages import select_stage

run_stage(select_stage, snakemake)  # noqa: F821 - injected by Snakemake
