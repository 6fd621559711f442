"""Snakemake script: the random and most-popular reference rankers."""

from pathlib import Path

from layerkd.reference import evaluate_reference
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
evaluate_reference(
    Path(sm.input.samples),
    Path(sm.input.interactions),
    Path(sm.output.random),
    Path(sm.output.popular),
    bootstrap=sm.params.eval["bootstrap"],
    seed=sm.params.eval["seed"],
)
