"""Run one pipeline stage outside Snakemake: ``python -m layerkd STAGE --name value ...``.

Every stage is a keyword-only function whose parameter names are its rule's input, output and
params names, so the command line takes the same names: ``--teacher results/x/teacher/final``.
A value is read as JSON when it parses (numbers, ``null``, objects, lists) and as a string
otherwise; parameters typed as paths become :class:`~pathlib.Path`. ``--threads N`` caps the
torch threads and ``--log FILE`` sends the log there. ``python -m layerkd`` lists the stages.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

STAGES = {
    "fetch_raw": "layerkd.data.fetch:fetch_raw",
    "prepare_data": "layerkd.data.prepare:prepare_stage",
    "prepare_teacher": "layerkd.teacher.stages:prepare_teacher",
    "finetune_teacher": "layerkd.teacher.stages:finetune_teacher",
    "teacher_cache": "layerkd.teacher.stages:cache_shard",
    "merge_cache": "layerkd.teacher.stages:merge_cache",
    "score": "layerkd.importance.scores:score_stage",
    "ablation": "layerkd.importance.ablation:ablation_stage",
    "greedy": "layerkd.importance.greedy:greedy_stage",
    "validation": "layerkd.importance.agreement:agreement_stage",
    "select": "layerkd.selection.stages:select_stage",
    "screen": "layerkd.student.screen:screen_stage",
    "layersets": "layerkd.selection.stages:layersets_stage",
    "build_student": "layerkd.student.build:build_student",
    "distill": "layerkd.student.distill:distill_student",
    "evaluate": "layerkd.evaluation.evaluate:evaluate_model",
    "evaluate_reference": "layerkd.evaluation.reference:evaluate_reference",
    "train_sasrec": "layerkd.evaluation.sasrec:train_sasrec",
    "evaluate_sasrec": "layerkd.evaluation.sasrec:evaluate_sasrec",
    "report": "layerkd.report.tables:report_stage",
    "compare_datasets": "layerkd.report.datasets:datasets_stage",
}


def stage(name: str) -> Any:
    """The stage function run by rule ``name``."""
    if name not in STAGES:
        raise SystemExit(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    module, fn = STAGES[name].split(":")
    return getattr(importlib.import_module(module), fn)


def _value(text: str, annotation: str) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if "Path" in annotation and value is not None:
        if annotation.startswith("list"):
            return [Path(v) for v in (value if isinstance(value, list) else [value])]
        return Path(value)
    return value


def parse(fn: Any, argv: list[str]) -> tuple[dict[str, Any], int, str | None]:
    """(keyword arguments of ``fn``, threads, log file) from ``--name value`` pairs."""
    hints = {n: str(p.annotation) for n, p in inspect.signature(fn).parameters.items()}
    kwargs: dict[str, Any] = {}
    threads, log = 1, None
    if len(argv) % 2:
        raise SystemExit(f"expected --name value pairs, got {argv}")
    for flag, text in zip(argv[::2], argv[1::2], strict=True):
        if not flag.startswith("--"):
            raise SystemExit(f"expected --name, got {flag!r}")
        name = flag[2:].replace("-", "_")
        if name == "threads":
            threads = int(text)
        elif name == "log":
            log = text
        else:
            kwargs[name] = _value(text, hints.get(name, ""))
    return kwargs, threads, log


def main(argv: list[str] | None = None) -> Any:
    """Entry point of ``python -m layerkd``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nstages:\n  " + "\n  ".join(STAGES))
        return None
    from layerkd.runtime import call_stage, setup

    fn = stage(argv[0])
    kwargs, threads, log = parse(fn, argv[1:])
    setup(log, threads)
    return call_stage(fn, kwargs, f"python -m layerkd {argv[0]}")


if __name__ == "__main__":
    main()
