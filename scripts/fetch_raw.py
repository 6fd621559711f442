"""Snakemake script: fetch the raw files of one dataset (generate, mirror or download)."""

from pathlib import Path

from layerkd.data.fetch import fetch_raw
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
fetch_raw(sm.params.dataset, Path(sm.output.manifest).parent, mirror=sm.params.mirror)
