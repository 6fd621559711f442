"""benchmarks/teacher_study.py as a real subprocess on a tiny prepared dataset: one row per
variant, each variant's settings applied (a LoRA run trains adapters, a top run its layers), and
the best validation NDCG@5 is the best of the variant's own fine-tuning log."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.student.test_build import make_workspace

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_teacher_study_prints_one_row_per_variant(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    root = tmp_path / "project"
    (root / "config").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "config" / "config.yaml", root / "config" / "config.yaml")
    overlay = {"teacher": {"model": "tiny-random", "head_dim": 16, "finetune": {"lr": 0.01}},
               "selection": {"k": 2}}  # fmt: skip
    (root / "tiny.yaml").write_text(yaml.safe_dump(overlay))
    data, res = root / "data" / "processed" / "d", root / "results" / "d" / "teacher"
    data.mkdir(parents=True)
    res.mkdir(parents=True)
    shutil.copy(ws["samples"], data / "samples.parquet")
    shutil.copy(ws["items"], data / "items.parquet")
    # what full-ranking validation (eval.primary: full, the default) reads: each user's items
    samples = pd.read_parquet(ws["samples"])
    pairs = {(u, i) for u, h, t in samples[["user_id", "history", "target"]].itertuples(index=False)
             for i in [*h, t]}  # fmt: skip
    pd.DataFrame(sorted(pairs), columns=["user_id", "item_id"]).to_parquet(
        data / "interactions.parquet"
    )
    shutil.copy(ws["features"], res / "item_features.pt")
    shutil.copytree(ws["teacher"], res / "base")
    out = tmp_path / "rows.json"
    cmd = [sys.executable, str(REPO_ROOT / "benchmarks" / "teacher_study.py"), "--root", str(root),
           "--dataset", "d", "--configfile", str(root / "tiny.yaml"), "--variant", "top_layers=1",
           "--variant", "mode=lora,lora_r=2", "--epochs", "2", "--patience", "5",
           "--json", str(out)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT / "src")}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [r["variant"] for r in rows] == ["top_layers=1", "mode=lora,lora_r=2"]
    assert [r["depth"] for r in rows] == [1, "lora r2"]
    for r in rows:
        assert r["train_samples"] == 24 and r["epoch_ceiling"] == 2 and r["lr"] == 0.01
        assert r["epochs_run"] == 2  # patience 5 never stops a 2-epoch run
        assert len(r["valid_ndcg@5_by_epoch"]) == 3  # before training and after each epoch
        assert r["best_valid_ndcg@5"] == pytest.approx(max(r["valid_ndcg@5_by_epoch"]), abs=1e-4)
    assert "| variant" in proc.stdout
