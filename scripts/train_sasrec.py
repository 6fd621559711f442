"""Snakemake script: train the SASRec reference (its model, log and learned item table)."""

from layerkd.evaluation.sasrec import train_sasrec
from layerkd.runtime import run_stage

run_stage(train_sasrec, snakemake)  # noqa: F821 - injected by Snakemake
