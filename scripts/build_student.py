"""Snakemake script: build one student (keep or compact) of one layer set."""

from layerkd.runtime import run_stage
from layerkd.student.build import build_student

run_stage(build_student, snakemake)  # noqa: F821 - injected by Snakemake
