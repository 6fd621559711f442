"""Snakemake script: distil one student offline from the teacher cache (resumable)."""

from layerkd.runtime import run_stage
from layerkd.student.distill import distill_student

run_stage(distill_student, snakemake)  # noqa: F821 - injected by Snakemake
