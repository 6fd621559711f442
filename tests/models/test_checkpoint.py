"""Checkpoints: a distillation or a teacher fine-tune killed with SIGKILL resumes and ends
exactly like an uninterrupted run (real subprocesses, a real kill), RNG round trips, stale
checkpoints."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from layerkd.config import defaults
from layerkd.models.checkpoint import (
    checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from layerkd.student.build import build_student
from tests.student.test_build import make_workspace

LOOP = {"epochs": 12, "batch_size": 4, "lr": 0.002, "checkpoint_every": 4, "patience": 100}
#: the two training runs of the pipeline, both through ``models.fit``: CLI stage and arguments
RUNS = {
    "distill": (
        {"distill_cfg": defaults("distill", **LOOP, w_hidden=0.5), "seed": 5},
        lambda ws, out: {
            "init": out.parent.parent / "init",
            "features": ws["features"],
            "item_table": ws["items"],
            "samples": ws["samples"],
            "cache": ws["cache"],
            "final": out / "final",
            "train_log": out / "train_log.parquet",
            "max_prompt_tokens": 64,
        },
    ),
    "finetune_teacher": (
        {"finetune_cfg": defaults("teacher.finetune", **LOOP), "seed": 5},
        lambda ws, out: {
            "backbone": ws["teacher"],
            "features": ws["features"],
            "item_table": ws["items"],
            "samples": ws["samples"],
            "interactions": ws["interactions"],
            "teacher": out / "final",
            "train_log": out / "train_log.parquet",
            "head_dim": 16,
            "max_prompt_tokens": 64,
        },
    ),
}


def _cmd(stage: str, ws: dict[str, Path], out: Path) -> list[str]:
    extra, paths = RUNS[stage]
    args = {
        **paths(ws, out),
        **extra,
        "checkpoints": out / "checkpoints",
        "device": "cpu",
        "dtype": "fp32",
        "device_map": None,
    }
    cmd = [sys.executable, "-m", "layerkd", stage, "--threads", "1"]
    for k, v in args.items():
        cmd += [f"--{k}", v if isinstance(v, str) else json.dumps(v, default=str)]
    return cmd


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _weights(final: Path) -> dict[str, torch.Tensor]:
    out = load_file(final / "model.safetensors")
    out.update({f"heads.{k}": v for k, v in load_file(final / "heads.safetensors").items()})
    return out


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(RUNS))
def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path, stage):
    """Distillation and teacher fine-tuning, each killed with SIGKILL after its first
    checkpoint and started again, end with the weights and log of an uninterrupted run."""
    ws = make_workspace(tmp_path / "ws")
    build_student(
        teacher=ws["teacher"],
        features=ws["features"],
        item_table=ws["items"],
        samples=ws["samples"],
        layerset=ws["layerset"],
        cache=ws["cache"],
        init=tmp_path / "init",
        mode="keep",
        seed=0,
        compact=defaults("student.compact"),
    )
    killed, whole = tmp_path / "runs" / "killed", tmp_path / "runs" / "whole"
    # 1. start, wait for the first checkpoint, kill -9
    proc = subprocess.Popen(
        _cmd(stage, ws, killed), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ckpt_dir = killed / "checkpoints"
    deadline = time.monotonic() + 120
    while not checkpoints(ckpt_dir):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final").exists(), "the run ended before the kill"
    step = int(checkpoints(ckpt_dir)[-1].stem[4:])
    assert 0 < step < 72  # 12 epochs x 6 steps
    # 2. start again: it resumes from the checkpoint and finishes
    again = subprocess.run(
        _cmd(stage, ws, killed), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr
    assert not ckpt_dir.exists()  # cleared after a finished run
    # 3. an uninterrupted run with the same settings
    full = subprocess.run(
        _cmd(stage, ws, whole), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert full.returncode == 0, full.stderr[-3000:]
    assert "resuming from" not in full.stderr
    # identical weights, metrics and training log
    a, b = _weights(killed / "final"), _weights(whole / "final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = pd.read_parquet(killed / "train_log.parquet")
    log_b = pd.read_parquet(whole / "train_log.parquet")
    pd.testing.assert_frame_equal(log_a, log_b, check_exact=True)
    assert log_a["valid_ndcg@5"].notna().sum() == 13  # before training + every epoch


def test_rng_states_round_trip():
    state = rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_only_the_newest_checkpoint_is_kept_and_stale_ones_are_ignored(tmp_path):
    save_checkpoint(tmp_path, 3, {"fingerprint": "a", "x": 1})
    save_checkpoint(tmp_path, 6, {"fingerprint": "a", "x": 2})
    assert [p.name for p in checkpoints(tmp_path)] == ["step0000006.pt"]
    state = load_checkpoint(tmp_path, "a")
    assert state is not None and state["x"] == 2 and state["step"] == 6
    assert load_checkpoint(tmp_path, "other settings") is None
    assert checkpoints(tmp_path) == []
