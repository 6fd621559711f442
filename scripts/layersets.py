"""Snakemake script: checkpoint: group the distilled selections into distinct layer sets."""

from layerkd.runtime import run_stage
from layerkd.selection.stages import layersets_stage

run_stage(layersets_stage, snakemake)  # noqa: F821 - injected by Snakemake
