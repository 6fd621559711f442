"""Snakemake script: merge the teacher cache shards."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.teacher import merge_cache

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
merge_cache([Path(p) for p in sm.input.shards], Path(sm.output.cache), Path(sm.output.stats))
