"""Student stages: build a layer-selected student from the teacher, then distil it offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerkd.distill import DistillParams, distill
from layerkd.io import atomic_dir, read_json, write_parquet
from layerkd.models.backbone import keep_layers
from layerkd.models.recmodel import load_recmodel, save_recmodel
from layerkd.models.samples import load_split
from layerkd.teacher import load_features


def build_student(
    teacher_dir: Path,
    features_path: Path,
    items_path: Path,
    layerset_path: Path,
    out_dir: Path,
    *,
    mode: str,
) -> dict[str, Any]:
    """``keep`` mode: teacher embeddings + the selected layers (weights copied, order kept) +
    final norm + the teacher's heads, saved as an HF directory plus heads."""
    if mode != "keep":
        raise ValueError(f"student.modes: mode {mode!r} is not supported (supported: keep)")
    spec = read_json(layerset_path)
    items = pd.read_parquet(items_path)
    model, tok, meta = load_recmodel(teacher_dir, load_features(features_path, items))
    n_layers = model.n_layers
    keep_layers(model.lm, spec["layers"])
    info = {
        "kind": "student",
        "mode": mode,
        "layers": spec["layers"],
        "layerset": spec["layerset"],
        "selections": spec["selections"],
        "teacher_layers": n_layers,
    }
    with atomic_dir(out_dir) as tmp:
        save_recmodel(model, tok, tmp, info)
    return info


def distill_student(
    init_dir: Path,
    features_path: Path,
    items_path: Path,
    samples_path: Path,
    cache_path: Path,
    out_dir: Path,
    log_path: Path,
    *,
    max_prompt_tokens: int,
    distill_cfg: dict[str, Any],
) -> None:
    """Distil the student in ``init_dir`` from the cached teacher outputs; save the best."""
    items, samples = pd.read_parquet(items_path), pd.read_parquet(samples_path)
    model, tok, meta = load_recmodel(init_dir, load_features(features_path, items))
    cache = torch.load(cache_path, weights_only=False)
    train = load_split(samples, items, tok, "train", max_prompt_tokens)
    valid = load_split(samples, items, tok, "valid", max_prompt_tokens)
    model, train_log = distill(
        model, meta["layers"], cache["train"], train, valid, DistillParams(**distill_cfg)
    )
    with atomic_dir(out_dir) as tmp:
        save_recmodel(model, tok, tmp, meta)
    write_parquet(log_path, train_log)
