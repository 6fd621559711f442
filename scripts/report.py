"""Snakemake script: the summary tables of one dataset."""

from pathlib import Path

from layerkd.report import report_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
report_stage([Path(p) for p in sm.input.evals], Path(sm.output.csv).parent)
