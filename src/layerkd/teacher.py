"""Teacher stages: prepare the backbone and item features, fine-tune, run the analysis pass."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerkd.cache import calibration_pass, merge_shards, shard_indices, train_pass
from layerkd.finetune import FinetuneParams, finetune
from layerkd.io import atomic_dir, save_torch, write_json, write_parquet
from layerkd.models.backbone import load_causal_lm, prepare_backbone
from layerkd.models.recmodel import RecHeads, RecModel, encode_items, load_recmodel, save_recmodel
from layerkd.models.samples import load_split
from layerkd.runtime import device_of

log = logging.getLogger(__name__)


def prepare_teacher(
    items_path: Path,
    out_dir: Path,
    features_path: Path,
    *,
    model: str,
    tiny: dict[str, Any],
    max_item_tokens: int,
    batch_size: int,
    seed: int,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> dict[str, Any]:
    """Save the base backbone as an HF directory and encode every item text once."""
    from transformers import AutoTokenizer

    items = pd.read_parquet(items_path)
    with atomic_dir(out_dir) as tmp:
        info = prepare_backbone(model, tmp, tiny=tiny, texts=items["text"].tolist(), seed=seed)
        lm = load_causal_lm(tmp, device=device_of(device), dtype=dtype, device_map=device_map)
        tok = AutoTokenizer.from_pretrained(str(tmp))
        feats = encode_items(
            lm, tok, items["text"].astype(str).tolist(), max_item_tokens, batch_size
        )
        write_json(tmp / "backbone.json", info)
    save_torch(features_path, {"item_ids": items["item_id"].tolist(), "features": feats})
    return info


def load_features(path: Path, items: pd.DataFrame) -> torch.Tensor:
    """Item features saved by :func:`prepare_teacher`, checked against ``items.parquet``."""
    blob = torch.load(path, weights_only=False)
    if blob["item_ids"] != items["item_id"].tolist():
        raise ValueError(f"{path} was computed for other items than items.parquet: rerun it")
    return blob["features"]


def load_for_scoring(
    model_dir: Path,
    features_path: Path,
    items_path: Path,
    samples_path: Path,
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> tuple[RecModel, Any, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """A saved model (teacher or student) with its item features, plus items, samples and the
    model's metadata: what every step that scores samples with a saved model starts from."""
    items, samples = pd.read_parquet(items_path), pd.read_parquet(samples_path)
    model, tok, meta = load_recmodel(
        model_dir,
        load_features(features_path, items),
        device=device_of(device),
        dtype=dtype,
        device_map=device_map,
    )
    return model, tok, items, samples, meta


def finetune_teacher(
    base_dir: Path,
    features_path: Path,
    samples_path: Path,
    items_path: Path,
    out_dir: Path,
    log_path: Path,
    *,
    head_dim: int,
    max_prompt_tokens: int,
    seed: int,
    finetune_cfg: dict[str, Any],
    device: str = "cpu",
    dtype: str = "fp32",
) -> None:
    """Fine-tune the base backbone with fresh heads on the task; save the merged teacher.

    Training keeps fp32 master weights (``dtype`` only sets how later steps load the teacher).
    """
    from transformers import AutoTokenizer

    items, samples = pd.read_parquet(items_path), pd.read_parquet(samples_path)
    feats = load_features(features_path, items)
    lm = load_causal_lm(base_dir, device=device_of(device))
    tok = AutoTokenizer.from_pretrained(str(base_dir))
    torch.manual_seed(seed)
    heads = RecHeads(lm.config.hidden_size, feats.shape[1], len(items), head_dim)
    model = RecModel(lm, heads.to(device), feats.to(device))
    train = load_split(samples, items, tok, "train", max_prompt_tokens)
    valid = load_split(samples, items, tok, "valid", max_prompt_tokens)
    params = FinetuneParams(**{**finetune_cfg, "seed": seed})
    model, train_log = finetune(model, train, valid, params)
    n_layers = model.n_layers
    meta = {"kind": "teacher", "layers": list(range(n_layers)), "teacher_layers": n_layers}
    with atomic_dir(out_dir) as tmp:
        save_recmodel(model, tok, tmp, meta)
    write_parquet(log_path, train_log)


def cache_shard(
    teacher_dir: Path,
    features_path: Path,
    samples_path: Path,
    items_path: Path,
    out_path: Path,
    *,
    shard: int,
    n_shards: int,
    batch_size: int,
    max_prompt_tokens: int,
    w_rating: float,
    device: str = "cpu",
    dtype: str = "fp32",
    device_map: str | None = None,
) -> None:
    """One shard of the teacher pass: calibration statistics and training-sample outputs."""
    model, tok, items, samples, _ = load_for_scoring(
        teacher_dir,
        features_path,
        items_path,
        samples_path,
        device=device,
        dtype=dtype,
        device_map=device_map,
    )
    calib = load_split(samples, items, tok, "calibration", max_prompt_tokens)
    train = load_split(samples, items, tok, "train", max_prompt_tokens)
    c_idx = shard_indices(len(calib), shard, n_shards)
    t_idx = shard_indices(len(train), shard, n_shards)
    stats = calibration_pass(model, calib.subset(c_idx), batch_size, w_rating)
    stats["index"] = torch.tensor(c_idx, dtype=torch.long)
    outputs = train_pass(model, train.subset(t_idx), batch_size)
    save_torch(
        out_path,
        {"calibration": stats, "train": outputs, "train_index": torch.tensor(t_idx)},
    )


def merge_cache(parts: list[Path], out_path: Path, stats_path: Path) -> None:
    """Merge the shard files into one cache (same result as a single shard), and write the
    calibration statistics the scoring and selection steps read (NumPy only, no torch)."""
    import numpy as np

    from layerkd.importance import block_distances
    from layerkd.io import atomic_path

    merged = merge_shards([torch.load(p, weights_only=False) for p in parts])
    save_torch(out_path, merged)
    calib = merged["calibration"]
    arrays = {f"sum_{k}": v.double().numpy() for k, v in calib["sums"].items()}
    with atomic_path(stats_path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            n=np.array(calib["n"]),
            angular_distance=block_distances(calib["last_states"]),
            **arrays,
        )
