"""Snakemake script: save the teacher backbone as an HF directory and encode the items."""

from layerkd.runtime import run_stage
from layerkd.teacher.stages import prepare_teacher

run_stage(prepare_teacher, snakemake)  # noqa: F821 - injected by Snakemake
