"""Snakemake script: screen every distinct layer set of one k (keep students scored at init and
after a few distillation steps)."""

from layerkd.runtime import run_stage
from layerkd.student.screen import screen_stage

run_stage(screen_stage, snakemake)  # noqa: F821 - injected by Snakemake
