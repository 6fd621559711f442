"""Evaluation of a saved model (teacher or student) on the test candidates."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerkd.io import write_json
from layerkd.metrics import rating_metrics
from layerkd.models.samples import load_split
from layerkd.models.train import score_split
from layerkd.reference import candidates_digest, eval_record
from layerkd.stats import bootstrap_ci
from layerkd.teacher import load_for_scoring


def _speed(model: Any, data: Any, batch_size: int, n_latency: int = 20) -> dict[str, float]:
    """User-tower latency at batch 1 (ms, median of ``n_latency`` users after a warm-up) and
    throughput at ``batch_size`` (users/s, best of 3) on the same samples for every model."""
    model.eval()
    with torch.no_grad():
        for i in range(min(3, len(data))):  # warm-up: allocator, kernels
            model(*data.batch([i])[:2])
        lat = []
        for i in range(min(n_latency, len(data))):
            b, cand, _ = data.batch([i])
            t0 = time.perf_counter()
            model(b, cand)
            lat.append(time.perf_counter() - t0)
        idx = list(range(min(batch_size, len(data))))
        b, cand, _ = data.batch(idx)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            model(b, cand)
            best = min(best, time.perf_counter() - t0)
    return {"latency_ms_b1": 1000 * float(np.median(lat)), "throughput_users_s": len(idx) / best}


def rating_detail(
    pred: np.ndarray, true: np.ndarray, user_ids: list[str], *, bootstrap: int, seed: int
) -> dict[str, Any]:
    """Per-user rating errors over the users with a known rating, and bootstrap intervals of
    RMSE, MAE and 5-class accuracy (class = rounded regression prediction)."""
    known = ~np.isnan(true)
    if not known.any():
        return {"rating_per_user": None, "rating_ci": None, "user_ids_rated": []}
    p, t = pred[known], true[known]
    per = {
        "sq_err": (p - t) ** 2,
        "abs_err": np.abs(p - t),
        "correct": (np.clip(np.floor(p + 0.5), 1, 5) == np.clip(np.floor(t + 0.5), 1, 5)) * 1.0,
    }
    ci = {
        "rmse": [
            float(np.sqrt(v)) for v in bootstrap_ci(per["sq_err"], n_boot=bootstrap, seed=seed)[1:]
        ],
        "mae": list(bootstrap_ci(per["abs_err"], n_boot=bootstrap, seed=seed)[1:]),
        "accuracy": list(bootstrap_ci(per["correct"], n_boot=bootstrap, seed=seed)[1:]),
    }
    return {
        "rating_per_user": {k: v.tolist() for k, v in per.items()},
        "rating_ci": ci,
        "user_ids_rated": [u for u, k in zip(user_ids, known, strict=True) if k],
    }


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
    model, tok, items, samples, meta = load_for_scoring(
        model_dir, features_path, items_path, samples_path, device=device, dtype=dtype
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
        **rating_detail(
            pred_rating, test.rating.numpy(), test.user_ids, bootstrap=bootstrap, seed=seed
        ),
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
