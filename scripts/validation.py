"""Snakemake script: rank correlations between importance methods (and ablation)."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.validation import validation_stage

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
validation_stage([Path(p) for p in sm.input.scores], Path(sm.output.csv).parent)
