"""Evaluation of a saved model (teacher or student) on the test candidates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerkd.io import write_json
from layerkd.metrics import rating_metrics
from layerkd.models.recmodel import load_recmodel
from layerkd.models.samples import load_split
from layerkd.models.train import score_split
from layerkd.reference import candidates_digest, eval_record
from layerkd.teacher import load_features


def _speed(model: Any, data: Any, batch_size: int, repeats: int = 3) -> dict[str, float]:
    """User-tower latency at batch 1 (ms, median) and throughput at ``batch_size`` (users/s)."""
    model.eval()
    with torch.no_grad():
        lat = []
        for i in range(min(repeats * 3, len(data))):
            b, cand, _ = data.batch([i])
            t0 = time.perf_counter()
            model(b, cand)
            lat.append(time.perf_counter() - t0)
        idx = list(range(min(batch_size, len(data))))
        b, cand, _ = data.batch(idx)
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(b, cand)
        dt = (time.perf_counter() - t0) / repeats
    return {"latency_ms_b1": 1000 * float(np.median(lat)), "throughput_users_s": len(idx) / dt}


def evaluate_model(
    model_dir: Path,
    features_path: Path,
    items_path: Path,
    samples_path: Path,
    out_path: Path,
    *,
    name: str,
    max_prompt_tokens: int,
    batch_size: int,
    bootstrap: int,
    seed: int,
    device: str = "cpu",
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Score the test split with a saved model and write ``eval/{name}.json``."""
    items, samples = pd.read_parquet(items_path), pd.read_parquet(samples_path)
    model, tok, meta = load_recmodel(
        model_dir, load_features(features_path, items), device=device, dtype=dtype
    )
    test = load_split(samples, items, tok, "test", max_prompt_tokens)
    scores, pred_rating = score_split(model, test, batch_size, desc=f"evaluate {name}")
    extra: dict[str, Any] = {
        "layers": meta.get("layers"),
        "layerset": meta.get("layerset"),
        "mode": meta.get("mode"),
        "seed": meta.get("seed"),
        "selections": meta.get("selections"),
        "teacher_layers": meta.get("teacher_layers"),
        "params": int(sum(p.numel() for p in model.parameters())),
        "rating": rating_metrics(pred_rating, None, test.rating.numpy()),
        **_speed(model, test, 32),
    }
    rec = eval_record(
        name,
        meta["kind"],
        scores,
        test.user_ids,
        candidates_digest(samples),
        bootstrap=bootstrap,
        seed=seed,
        extra=extra,
    )
    write_json(out_path, rec)
    return rec
