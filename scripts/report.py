"""Snakemake script: the summary tables, paired tests, hypotheses and plots of one dataset."""

from pathlib import Path

from layerkd.report import ReportInputs, report_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)
inputs = ReportInputs(
    evals=[Path(p) for p in sm.input.evals],
    scores=[Path(p) for p in sm.input.scores],
    selections=[Path(p) for p in sm.input.selections],
    finetune_log=Path(sm.input.finetune_log),
    train_logs=[Path(p) for p in sm.input.train_logs],
    validation=Path(sm.input.validation[0]) if sm.input.validation else None,
)
report_stage(
    inputs,
    Path(sm.output.csv).parent,
    plots_dir=Path(sm.output.plots),
    n_boot=sm.params.n_boot,
    seed=sm.params.seed,
    dataset=sm.params.dataset,
)
