"""Snakemake script: build one layer-selected student from the teacher."""

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
    mode=sm.params.mode,
)
