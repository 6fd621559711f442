"""Snakemake script: prepare items, interactions, samples and stats for one dataset."""

from pathlib import Path

from layerkd.data.fetch import prepare_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
prepare_stage(
    Path(sm.input.manifest).parent,
    sm.params.dataset,
    sm.params.data,
    Path(sm.output.item_table).parent,
)
