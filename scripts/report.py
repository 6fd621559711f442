"""Snakemake script: the summary tables, paired tests, hypotheses and plots of one dataset."""

from layerkd.report.tables import report_stage
from layerkd.runtime import run_stage

run_stage(report_stage, snakemake)  # noqa: F821 - injected by Snakemake
