"""Snakemake script: the summary tables, paired tests, hypotheses and plots of one dataset."""

from pathlib import Path

from layerkd.report import ReportInputs, report_stage
from layerkd.runtime import setup

sm = snakemake  # noqa: F821 - injected by Snakemake
setup(sm.log[0], sm.threads)


def paths(key: str) -> list[Path]:
    """The input files named ``key`` (none when the rule does not list it)."""
    value = sm.input.get(key) or []
    return [Path(value)] if isinstance(value, str) else [Path(p) for p in value]


inputs = ReportInputs(
    evals=paths("evals"),
    scores=paths("scores"),
    selections=paths("selections"),
    finetune_log=next(iter(paths("finetune_log")), None),
    train_logs=paths("train_logs"),
    validation=next(iter(paths("validation")), None),
)
report_stage(
    inputs,
    Path(sm.output.csv).parent,
    plots_dir=Path(sm.output.plots) if sm.output.get("plots") else None,
    n_boot=sm.params.get("n_boot", 1000),
    seed=sm.params.get("seed", 0),
    dataset=sm.params.dataset,
)
