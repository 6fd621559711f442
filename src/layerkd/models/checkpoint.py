"""Training checkpoints that let a killed distillation resume exactly where it stopped.

A checkpoint holds everything the rest of a run depends on: the trainable weights, the
optimiser and scheduler states, every RNG state (Python, NumPy, torch CPU and CUDA), the data
position (epoch, next batch), the early-stopping state with the best weights so far, and the
training log up to that step. It is written atomically (temporary file + rename), so a kill
during a write leaves the previous checkpoint intact; only the newest one is kept.

A fingerprint of the run's settings and inputs is stored with it: a checkpoint left behind by
a run with other settings is ignored (and replaced), never resumed from.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerkd.io import save_torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"step(\d+)\.pt$")


def fingerprint(*parts: Any) -> str:
    """A stable digest of JSON-serialisable ``parts`` (settings, input identities)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(*paths: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 (first 16 hex digits) of the bytes of ``paths``, read in 1 MiB blocks (memory
    stays flat whatever the file size)."""
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """Every RNG state a training step may touch."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoints(ckpt_dir: Path) -> list[Path]:
    """Checkpoint files in ``ckpt_dir``, oldest step first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def save_checkpoint(ckpt_dir: Path, step: int, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``step{step:07d}.pt`` (atomically) and drop older checkpoints."""
    path = ckpt_dir / f"step{step:07d}.pt"
    save_torch(path, {**state, "step": step, "rng": rng_state()})
    for old in checkpoints(ckpt_dir):
        if old != path:
            old.unlink(missing_ok=True)
    log.info("checkpoint %s", path)
    return path


def load_checkpoint(ckpt_dir: Path, expected: str) -> dict[str, Any] | None:
    """The newest checkpoint whose fingerprint is ``expected`` (RNG states restored), or
    ``None`` when there is none; checkpoints of other settings are removed."""
    for path in reversed(checkpoints(ckpt_dir)):
        try:
            state = torch.load(path, weights_only=False)
        except Exception as err:  # a truncated file cannot exist (atomic writes), but be safe
            log.warning("unreadable checkpoint %s (%s): ignored", path, err)
            continue
        if state.get("fingerprint") != expected:
            log.warning("checkpoint %s is from other settings: starting afresh", path)
            clear_checkpoints(ckpt_dir)
            return None
        set_rng_state(state["rng"])
        log.info("resuming from %s (step %d)", path, state["step"])
        return state
    return None


def clear_checkpoints(ckpt_dir: Path) -> None:
    """Remove the checkpoint directory (after a run finished)."""
    if ckpt_dir.is_dir():
        shutil.rmtree(ckpt_dir)
