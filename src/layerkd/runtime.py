"""Process setup shared by every pipeline step: logging to the rule's log file, threads, and the
call of a stage function with its rule's inputs, outputs and params by name."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Every pipeline script imports this module before torch: OpenMP reads its settings when torch
# loads it. Its default spin-waiting let a 2-thread step beside another torch process take
# 2-31 s instead of 1.6 s on 2 cores; passive waiting costs nothing measurable alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup(log_file: str | os.PathLike[str] | None, threads: int = 1) -> logging.Logger:
    """Send logging and stderr (progress bars) to ``log_file``; cap torch at ``threads``.

    Threads are capped at the machine's cores: Snakemake may grant more than exist.
    """
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
        sys.stderr = stream
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if "torch" in sys.modules:  # light steps never import torch (3 s of start-up)
        sys.modules["torch"].set_num_threads(max(1, min(int(threads), os.cpu_count() or 1)))
    return logging.getLogger("layerkd")


def device_of(name: str) -> str:
    """Validate ``teacher.device``: ``cuda`` needs a visible GPU."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("teacher.device is 'cuda' but no CUDA device is visible")
    return name


def stage_kwargs(job: Any) -> dict[str, Any]:
    """The keyword arguments of a stage function from a Snakemake job object: every named
    input and output as a :class:`~pathlib.Path` (a list of paths where the rule gives a list
    or a function), and every named param as a plain value (Snakemake's lists and dicts made
    plain Python)."""
    out: dict[str, Any] = {}
    for section in ("input", "output", "params"):
        for name, value in getattr(job, section).items():
            if name in out:
                raise ValueError(f"rule {job.rule}: {name!r} is named twice in input/output/params")
            out[name] = _plain(value, as_path=section != "params")
    return out


def _plain(value: Any, *, as_path: bool) -> Any:
    if isinstance(value, str):
        return Path(value) if as_path else value
    if isinstance(value, dict):
        return {k: _plain(v, as_path=as_path) for k, v in value.items()}
    if isinstance(value, list | tuple):  # Snakemake's Namedlist is a list
        return [_plain(v, as_path=as_path) for v in value]
    return value


def call_stage(fn: Callable[..., Any], kwargs: dict[str, Any], where: str) -> Any:
    """Call the keyword-only stage ``fn`` with ``kwargs``, first checking that the names match
    exactly (a clear error naming both sides instead of a TypeError deep in a job)."""
    params = inspect.signature(fn).parameters
    wanted = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    required = {n for n in wanted if params[n].default is inspect.Parameter.empty}
    missing, extra = sorted(required - set(kwargs)), sorted(set(kwargs) - wanted)
    if missing or extra:
        raise TypeError(
            f"{where}: {fn.__module__}.{fn.__name__} needs {sorted(wanted)}; "
            f"missing {missing}, unexpected {extra}"
        )
    return fn(**kwargs)


def run_stage(fn: Callable[..., Any], job: Any) -> Any:
    """What every script in ``scripts/`` does: log to the rule's log file, cap the threads,
    and call the stage ``fn`` with the rule's inputs, outputs and params by name."""
    setup(job.log[0] if job.log else None, job.threads)
    return call_stage(fn, stage_kwargs(job), f"rule {job.rule}")
