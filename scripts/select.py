"""Snakemake script: the layers one (method, strategy) keeps."""

from pathlib import Path

from layerkd.importance import select_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
strategy, _, repeat = sm.wildcards.strategy.partition("-")
scores = [sm.input.scores] if isinstance(sm.input.scores, str) else list(sm.input.scores)
select_stage(
    sm.wildcards.method,
    strategy,
    Path(sm.output.selection),
    k=int(sm.params.k),
    score_path=Path(scores[0]) if scores else None,
    stats_path=Path(sm.input.stats),
    seed=sm.params.seed,
    repeat=int(repeat or 0),
)
