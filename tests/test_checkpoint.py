"""Checkpoints: a distillation killed with SIGKILL resumes and ends exactly like an
uninterrupted run (real subprocesses, a real kill), RNG round trips, stale checkpoints."""

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

from layerkd.checkpoint import (
    checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from layerkd.student import build_student
from tests.test_student import make_workspace

PARAMS = {
    "epochs": 12,
    "batch_size": 4,
    "lr": 0.002,
    "checkpoint_every": 4,
    "patience": 100,
    "w_hidden": 0.5,
    "seed": 5,
}


def _cmd(ws: dict[str, Path], root: Path, out: str) -> list[str]:
    args = {
        "init": root / "init",
        "features": ws["features"],
        "items": ws["items"],
        "samples": ws["samples"],
        "cache": ws["cache"],
        "out": root / out / "final",
        "log": root / out / "train_log.parquet",
        "checkpoints": root / out / "checkpoints",
    }
    cmd = [sys.executable, "-m", "layerkd.student", "distill", "--threads", "1"]
    for k, v in args.items():
        cmd += [f"--{k}", str(v)]
    return cmd + ["--max-prompt-tokens", "64", "--params", json.dumps(PARAMS)]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _weights(final: Path) -> dict[str, torch.Tensor]:
    out = load_file(final / "model.safetensors")
    out.update({f"heads.{k}": v for k, v in load_file(final / "heads.safetensors").items()})
    return out


@pytest.mark.slow
def test_killed_distillation_resumes_to_the_uninterrupted_result(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    build_student(
        ws["teacher"],
        ws["features"],
        ws["items"],
        ws["layerset"],
        tmp_path / "init",
        mode="keep",
    )
    # 1. start, wait for the first checkpoint, kill -9
    proc = subprocess.Popen(
        _cmd(ws, tmp_path, "killed"), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    deadline = time.monotonic() + 120
    while not checkpoints(ckpt_dir):
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed" / "final").exists(), "the run ended before the kill"
    step = int(checkpoints(ckpt_dir)[-1].stem[4:])
    assert 0 < step < 72  # 12 epochs x 6 steps
    # 2. start again: it resumes from the checkpoint and finishes
    again = subprocess.run(
        _cmd(ws, tmp_path, "killed"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stderr
    assert not ckpt_dir.exists()  # cleared after a finished run
    # 3. an uninterrupted run with the same settings
    whole = subprocess.run(
        _cmd(ws, tmp_path, "whole"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "resuming from" not in whole.stderr
    # identical weights, metrics and training log
    a, b = _weights(tmp_path / "killed" / "final"), _weights(tmp_path / "whole" / "final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    log_a = pd.read_parquet(tmp_path / "killed" / "train_log.parquet")
    log_b = pd.read_parquet(tmp_path / "whole" / "train_log.parquet")
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
