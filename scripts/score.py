"""Snakemake script: per-layer importance scores of one method."""

from pathlib import Path

from layerkd.importance import score_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
score_stage(
    Path(sm.input.stats),
    sm.wildcards.method,
    Path(sm.output.scores),
    hybrid_weights=dict(sm.params.hybrid_weights),
)
