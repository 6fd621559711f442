"""Ablation, the measured ground truth: the task loss with one layer skipped minus the loss of
the full teacher, on the calibration samples. One forward sweep per skipped layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from layerkd.importance import score_record
from layerkd.io import write_json
from layerkd.models.backbone import LayerSubset
from layerkd.models.recmodel import RecModel, task_loss
from layerkd.models.samples import SplitData, load_split
from layerkd.models.text import batches


@torch.no_grad()
def mean_loss(model: RecModel, data: SplitData, batch_size: int, w_rating: float) -> float:
    """Mean task loss over ``data`` (sum of per-sample losses / n)."""
    model.eval()
    total = 0.0
    for rng in batches(len(data), batch_size):
        b, cand, rating = data.batch(rng)
        total += float(task_loss(model(b, cand), rating, w_rating, reduction="sum"))
    return total / len(data)


def ablation_scores(
    model: RecModel, data: SplitData, batch_size: int, w_rating: float
) -> tuple[float, np.ndarray]:
    """(full-model loss, per-layer loss increase when that layer is skipped)."""
    n_layers = model.n_layers
    full = mean_loss(model, data, batch_size, w_rating)
    deltas = np.zeros(n_layers)
    for layer in tqdm(range(n_layers), desc="ablation", unit="layer"):
        keep = [i for i in range(n_layers) if i != layer]
        with LayerSubset(model.lm, keep):
            deltas[layer] = mean_loss(model, data, batch_size, w_rating) - full
    return full, deltas


def ablation_stage(
    teacher_dir: Path,
    features_path: Path,
    samples_path: Path,
    items_path: Path,
    out_path: Path,
    *,
    max_samples: int | None,
    batch_size: int,
    max_prompt_tokens: int,
    w_rating: float,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> dict[str, Any]:
    """Write ``scores/ablation.json``. Negative deltas (skipping the layer helped) are kept in
    ``raw``; the normalised scores (and so the selections) use ``max(delta, 0)``."""
    from layerkd.teacher import load_for_scoring

    model, tok, items, samples = load_for_scoring(
        teacher_dir,
        features_path,
        items_path,
        samples_path,
        device=device,
        dtype=dtype,
        device_map=device_map,
    )
    calib = load_split(samples, items, tok, "calibration", max_prompt_tokens)
    if max_samples is not None:
        calib = calib.subset(range(min(max_samples, len(calib))))
    full, deltas = ablation_scores(model, calib, batch_size, w_rating)
    rec = score_record("ablation", np.clip(deltas, 0.0, None), len(calib))
    rec.update(
        {"raw": deltas.tolist(), "full_loss": full, "negative_layers": int((deltas < 0).sum())}
    )
    write_json(out_path, rec)
    return rec
