"""Snakemake script: fetch the raw files of one dataset (generate, mirror or download)."""

from layerkd.data.fetch import fetch_raw
from layerkd.runtime import run_stage

run_stage(fetch_raw, snakemake)  # noqa: F821 - injected by Snakemake
