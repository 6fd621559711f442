"""Snakemake script: build one student (keep or compact) of one layer set."""

from pathlib import Path

from layerkd.runtime import setup
from layerkd.student import build_student

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
build_student(
    Path(sm.input.teacher),
    Path(sm.input.features),
    Path(sm.input.item_table),
    Path(sm.input.layerset),
    Path(sm.output.init),
    mode=sm.wildcards.mode,
    seed=int(sm.wildcards.seed),
    compact=dict(sm.params.compact),
    cache_path=Path(sm.input.cache),
)
