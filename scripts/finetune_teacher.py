"""Snakemake script: fine-tune the teacher on the recommendation task (resumable)."""

from layerkd.runtime import run_stage
from layerkd.teacher.stages import finetune_teacher

run_stage(finetune_teacher, snakemake)  # noqa: F821 - injected by Snakemake
