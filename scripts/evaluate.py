"""Snakemake script: evaluate one model (teacher or student) on the test candidates."""

from pathlib import Path

from layerkd.evaluate import evaluate_model
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
evaluate_model(
    Path(sm.input.model),
    Path(sm.input.features),
    Path(sm.input.item_table),
    Path(sm.input.samples),
    Path(sm.output.metrics),
    name=sm.params.name,
    max_prompt_tokens=sm.params.max_prompt_tokens,
    batch_size=sm.params.eval["batch_size"],
    bootstrap=sm.params.eval["bootstrap"],
    seed=sm.params.eval["seed"],
    device=getattr(sm.params, "device", "cpu"),
    dtype=getattr(sm.params, "dtype", "fp32"),
)
