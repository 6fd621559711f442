"""Snakemake checkpoint script: group selections into distinct layer sets."""

from pathlib import Path

from layerkd.importance import layersets_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
layersets_stage([Path(p) for p in sm.input.selections], Path(sm.output[0]))
