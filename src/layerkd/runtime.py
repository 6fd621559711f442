"""Process setup shared by every pipeline step: logging to the rule's log file, threads, seeds."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


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
