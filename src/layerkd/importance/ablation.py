"""Ablation, the measured ground truth: the task loss with one layer skipped minus the loss of
the full teacher, on the calibration samples (each skip reruns only the layers above it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from layerkd.importance.scores import score_record
from layerkd.io import write_json
from layerkd.models.backbone import LayerOutputs, LayerSubset
from layerkd.models.recmodel import RecModel, load_for_scoring, task_loss
from layerkd.models.samples import SplitData, load_split
from layerkd.models.text import batches
from layerkd.records import ScoreRecord


@torch.no_grad()
def ablation_scores(
    model: RecModel, data: SplitData, batch_size: int, w_rating: float
) -> tuple[float, np.ndarray]:
    """(full-model loss, per-layer loss increase when that layer is skipped).

    Skipping layer ``l`` leaves layers ``0..l-1`` untouched, so the states entering layer
    ``l`` are those of the full model: each batch runs the full model once (recording every
    layer's input) and then, per skipped layer, only layers ``l+1..L-1`` from the recorded
    input. That costs about half of a full forward per layer instead of a whole one.
    """
    model.eval()
    n_layers, n = model.n_layers, len(data)
    full, skipped = 0.0, np.zeros(n_layers)
    bar = tqdm(total=n * n_layers, desc="ablation", unit="sample-layer")
    for rng in batches(n, batch_size):
        b, cand, rating = data.batch(rng)
        with LayerOutputs(model.lm) as rec:
            full += float(task_loss(model(b, cand), rating, w_rating, reduction="sum"))
        for layer in range(n_layers):
            with LayerSubset(model.lm, list(range(layer + 1, n_layers))):
                out = model(b, cand, inputs_embeds=rec.inputs[layer])
            skipped[layer] += float(task_loss(out, rating, w_rating, reduction="sum"))
            bar.update(len(rng))
    bar.close()
    return full / n, skipped / n - full / n


def calibration_samples(
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    max_samples: int | None,
    max_prompt_tokens: int,
    **placement: Any,
) -> tuple[RecModel, SplitData]:
    """The saved teacher and its first ``max_samples`` calibration samples (None: all): what
    the measured methods (ablation, greedy) start from."""
    model, tok, items, frame, _ = load_for_scoring(
        teacher, features, item_table, samples, **placement
    )
    calib = load_split(frame, items, tok, "calibration", max_prompt_tokens, model.items_mode)
    if max_samples is not None:
        calib = calib.subset(range(min(max_samples, len(calib))))
    return model, calib


def ablation_stage(
    *,
    teacher: Path,
    features: Path,
    item_table: Path,
    samples: Path,
    scores: Path,
    max_samples: int | None,
    batch_size: int,
    max_prompt_tokens: int,
    w_rating: float,
    device: str,
    dtype: str,
    device_map: str | None,
) -> ScoreRecord:
    """Write ``scores/ablation.json`` (``scores``). Negative deltas (skipping the layer helped)
    are kept in ``raw``; the normalised scores (and so the selections) use ``max(delta, 0)``."""
    model, calib = calibration_samples(
        teacher, features, item_table, samples, max_samples, max_prompt_tokens,
        device=device, dtype=dtype, device_map=device_map,
    )  # fmt: skip
    full, deltas = ablation_scores(model, calib, batch_size, w_rating)
    rec = score_record("ablation", np.clip(deltas, 0.0, None), len(calib))
    rec.update(
        {"raw": deltas.tolist(), "full_loss": full, "negative_layers": int((deltas < 0).sum())}
    )
    write_json(scores, rec)
    return rec
